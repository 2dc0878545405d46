"""The CLAP-score judge: a clap model trained briefly on captioned tones scores clips with their own captions
above the same clips with shuffled captions (score and text->audio R@1), from an unwrapped file, at any rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipelines.evaluation.nodes import _judge_options
from pipelines.parameters import Parameters
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.evaluation.clap_score import clap_metrics, judge_clap, load_clap_judge
from stable_audio_ops.evaluation.judge import judge_generation, prepare_reference
from stable_audio_ops.models.checkpoints import save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.factory import create_training_module_from_config
from tests.models.clap_fixtures import TONES_HZ, caption, save_tiny_roberta, tiny_clap_config, tone_batch
from tests.pipelines.test_evaluation import PARAMS


@pytest.fixture(scope="module")
def clap_file(tmp_path_factory):
    """The tiny clap of tests/models/clap_fixtures trained 200 steps on the 8 captioned tones, unwrapped."""
    root = tmp_path_factory.mktemp("clap_judge")
    torch.manual_seed(0)
    config = tiny_clap_config(save_tiny_roberta(root / "roberta"), lr=3e-3)
    module = create_training_module_from_config(config, create_model_from_config(config))
    optimizer = module.configure_optimizers()[0]
    batch = tone_batch(phase_seed=0)
    for step in range(200):
        loss = module.training_step(batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return save_model_checkpoint(module.model.state_dict(), root / "clap.safetensors", config)


def tone_clips(sample_rate: int, seconds: float = 0.3, seed: int = 1) -> list[tuple[np.ndarray, int, dict]]:
    """The 8 tones (new phases) as judge clips ``(audio, sr, {"prompt": caption})``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return [(0.5 * np.sin(2 * math.pi * f * t + rng.uniform(0, 2 * math.pi)).astype(np.float32), sample_rate,
             {"prompt": caption(f)}) for f in TONES_HZ]


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("sample_rate", [8000, 16000])
def test_matching_captions_score_above_shuffled_ones(clap_file, sample_rate):
    """Clips at the model's rate or resampled from 16 kHz (and longer than its sample_size: cropped)."""
    judge = load_clap_judge(clap_file)
    clips = tone_clips(sample_rate)
    shuffled = [(audio, sr, clips[(i + 3) % len(clips)][2]) for i, (audio, sr, _) in enumerate(clips)]
    right, wrong = judge_clap(judge, clips), judge_clap(judge, shuffled)
    assert right["clap_r1"] >= 0.75, right
    assert wrong["clap_r1"] <= 0.25, wrong
    assert right["clap_score"] > wrong["clap_score"] + 0.3, (right, wrong)
    assert -1.0 <= wrong["clap_score"] < right["clap_score"] <= 1.0


def test_r1_counts_shared_captions_as_right_and_ties_as_wrong():
    e = torch.eye(3)
    assert clap_metrics(e, e, ["a", "b", "c"]) == {"clap_score": 1.0, "clap_r1": 1.0}
    # caption 0's best clip is clip 1, which carries the same caption: right
    assert clap_metrics(e, e[[1, 1, 2]], ["a", "a", "c"])["clap_r1"] == 1.0
    # collapsed embeddings: every caption ties a wrong clip, so nothing is retrieved
    same = torch.ones(3, 2) / math.sqrt(2)
    assert clap_metrics(same, same, ["a", "b", "c"]) == pytest.approx({"clap_score": 1.0, "clap_r1": 0.0})


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_evaluation_clap_model_parameter_adds_the_clap_judge(clap_file, tmp_path):
    """evaluation.clap_model null: the judges are unchanged; a clap path: every judged set gets clap_score /
    clap_r1; a model of another type: an error naming it."""
    assert "clap" not in _judge_options(Parameters(PARAMS, "evaluation"))
    options = _judge_options(Parameters({**PARAMS, "clap_model": str(clap_file)}, "evaluation"))
    clips = [(audio, sr, {**meta, "midi": 60, "instrument": "sine", "dynamic": "mf"})
             for audio, sr, meta in tone_clips(8000)]
    reference = prepare_reference(clips, "mel_stats")
    judged = judge_generation(clips, reference, **{**options, "kid_subsets": 2, "kid_subset_size": 4})
    assert judged["clap_r1"] >= 0.75 and judged["clap_score"] > 0.3
    with pytest.raises(ConfigError, match="clap"):
        load_clap_judge(_not_a_clap(tmp_path))


def _not_a_clap(root):
    from tests.tracking.tiny_models import write_tiny_models

    return write_tiny_models(root / "tiny")[0]  # the tiny autoencoder
