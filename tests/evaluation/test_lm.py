"""Judging an lm: held-out token perplexity scores codes as training does (padding left out), and the generated
clip checks catch NaN and silence."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from stable_audio_ops.config.dataset_config import load_dataset_config
from stable_audio_ops.data.dataloader import create_dataloader_from_config
from stable_audio_ops.evaluation.lm import clip_checks, heldout_token_perplexity, lm_report
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.factory import create_training_module_from_config
from tests.models.lm_fixtures import CODEBOOK_SIZE, NUM_QUANTIZERS, tiny_lm_config
from tests.training.train_fixtures import write_tone_dataset

SAMPLE_SIZE = 256  # 32 code frames


def _module():
    config = tiny_lm_config(conditioned=False, sample_size=SAMPLE_SIZE)
    torch.manual_seed(0)
    model = create_model_from_config(config).eval()
    return create_training_module_from_config(config, model)


def test_perplexity_equals_the_training_cross_entropy_without_dropout(tmp_path: Path) -> None:
    module = _module()
    dataset = load_dataset_config(write_tone_dataset(tmp_path, files=3, seconds=SAMPLE_SIZE / 16000))
    scored = heldout_token_perplexity(module.model, dataset, sample_size=SAMPLE_SIZE, batch_size=8)
    audio, metadata = next(iter(create_dataloader_from_config(dataset, batch_size=3, sample_size=SAMPLE_SIZE,
                                                              sample_rate=16000, audio_channels=1, num_workers=0,
                                                              seed=0)))
    with torch.no_grad():
        expected, per_codebook = module.loss(module.model.tokenize(audio), metadata, 0.0)
    assert scored["clips"] == 3 and abs(scored["cross_entropy"] - float(expected)) < 1e-5
    for q, ce in enumerate(per_codebook, start=1):
        assert abs(scored[f"cross_entropy_q{q}"] - float(ce)) < 1e-5
    # a fresh model guesses near uniformly; the reference is log(codebook_size)
    assert scored["uniform_cross_entropy"] == math.log(CODEBOOK_SIZE)
    assert abs(scored["cross_entropy"] - math.log(CODEBOOK_SIZE)) < 0.6
    assert math.isclose(scored["perplexity"], math.exp(scored["cross_entropy"]))

    # every clip's codes but those the delay pattern pushes past the end (codebook q's last q-1) are scored
    assert scored["tokens"] == 3 * (NUM_QUANTIZERS * 32 - (0 + 1 + 2))
    # clips padded to twice their length: the padded frames are not scored, so exactly the real codes count
    # (now all of them: the delayed ones fall into the padding)
    padded = heldout_token_perplexity(module.model, dataset, sample_size=2 * SAMPLE_SIZE, batch_size=8)
    assert padded["tokens"] == 3 * NUM_QUANTIZERS * 32


def test_clip_checks_flag_nan_and_silence_and_the_report_says_so() -> None:
    t = torch.arange(1600) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t)
    nan = tone.clone()
    nan[5] = float("nan")
    clips = clip_checks(torch.stack([tone, torch.zeros(1600), nan])[:, None])
    assert [(c["finite"], c["silent"]) for c in clips] == [(True, False), (True, True), (False, False)]
    assert abs(clips[0]["rms"] - 0.3 / math.sqrt(2)) < 1e-3
    perplexity = {"cross_entropy": 1.0, "perplexity": math.e, "cross_entropy_q1": 1.0, "uniform_cross_entropy":
                  math.log(16), "codebook_size": 16, "tokens": 10, "clips": 1}
    report = lm_report(perplexity, clips, {"seconds": 0.1, "temperature": 1.0, "top_k": 8, "seed": 0})
    assert "All clips finite and non-silent: NO" in report and "Below the uniform guess" in report
    assert "All clips finite and non-silent: yes" in lm_report(perplexity, clips[:1], {})
