"""``lm`` training: cross-entropy falls on a fixed set of tone tokens and the trained model generates them back;
upstream defaults and logged names; pre-encoded tokens; the train CLI and unwrap."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import MLFlowLogger
from torch.utils.data import DataLoader

from stable_audio_ops.config.dataset_config import load_dataset_config
from stable_audio_ops.errors import DatasetError
from stable_audio_ops.inference.lm_generation import generate_lm
from stable_audio_ops.inference.pre_encode import pre_encode_dataset
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.loading import load_local_model
from stable_audio_ops.training.demo_callbacks import build_demo_callback
from stable_audio_ops.training.factory import create_training_module_from_config
from stable_audio_ops.training.lm import LMTrainingModule, codebook_cross_entropy
from stable_audio_ops.training.lm_demos import LMDemoCallback
from stable_audio_ops.training.options import TrainOptions
from stable_audio_ops.training.unwrap import unwrap_checkpoint
from tests.models.lm_fixtures import CODEBOOK_SIZE, NUM_QUANTIZERS, tiny_autoencoder_config, tiny_lm_config
from tests.training.train_fixtures import train_cli, write_tone_dataset

SAMPLE_SIZE = 256  # 32 code frames
LABELS = ("low", "high")


def _tones() -> torch.Tensor:
    t = torch.arange(SAMPLE_SIZE) / 16000
    return torch.stack([0.5 * torch.sin(2 * math.pi * f * t) for f in (220.0, 1760.0)])[:, None]  # [2, 1, T]


def _batches(audio: torch.Tensor, steps: int) -> list:
    metadata = [{"label": label, "padding_mask": torch.ones(SAMPLE_SIZE)} for label in LABELS]
    return [(audio, metadata)] * steps


def _module(config: dict) -> LMTrainingModule:
    torch.manual_seed(0)
    model = create_model_from_config(config)
    return create_training_module_from_config(config, model)


def _fit(module: LMTrainingModule, batches: list) -> pl.Trainer:
    trainer = pl.Trainer(max_steps=len(batches), accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(module, DataLoader(batches, batch_size=None))
    return trainer


def test_training_lowers_cross_entropy_and_generation_returns_the_learned_tokens() -> None:
    module = _module(tiny_lm_config(sample_size=SAMPLE_SIZE))
    audio = _tones()
    codes = module.model.tokenize(audio)  # the fixed token set: [2 tones, 3 codebooks, 32 frames]
    metadata = _batches(audio, 1)[0][1]
    with torch.no_grad():
        initial, _ = module.loss(codes, metadata, 0.0)
    assert abs(float(initial) - math.log(CODEBOOK_SIZE)) < 0.6  # a fresh model is close to uniform

    trainer = _fit(module, _batches(audio, 60))
    with torch.no_grad():
        final, per_codebook = module.loss(codes, metadata, 0.0)
    assert float(final) < 0.25 * math.log(CODEBOOK_SIZE), float(final)
    logged = trainer.callback_metrics
    assert {"train/loss", "train/cross_entropy", "train/perplexity", "train/lr"} <= set(logged)
    assert {f"cross_entropy_q{k}" for k in (1, 2, 3)} | {f"perplexity_q{k}" for k in (1, 2, 3)} <= set(logged)

    # greedy generation conditioned on a label gives back that tone's tokens: every code training saw a target
    # for (all but the codes the delay pattern pushes past the clip: codebook q's last q timesteps)
    model = module.model.eval()
    pattern = model.lm.pattern(codes.shape[-1])
    _, trained = pattern.revert_logits(torch.zeros(1, NUM_QUANTIZERS, pattern.num_valid_steps, 1), valid_only=True)
    assert int((~trained).sum()) == 0 + 1 + 2
    for i, label in enumerate(LABELS):
        out = generate_lm(model, max_gen_len=codes.shape[-1], conditioning={"label": label}, top_k=1, decode=False)
        assert torch.equal(out.codes[0][trained], codes[i][trained]), label


def test_upstream_optimizer_defaults_and_per_codebook_cross_entropy() -> None:
    module = _module(tiny_lm_config(sample_size=SAMPLE_SIZE))
    optimizer = module.configure_optimizers()[0]
    group = optimizer.param_groups[0]
    assert type(optimizer).__name__ == "AdamW" and tuple(group["betas"]) == (0.9, 0.95)
    assert group["weight_decay"] == 0.1 and group["lr"] == 3e-3
    trained = {id(p) for p in group["params"]}
    assert not any(id(p) in trained for p in module.model.pretransform.parameters())  # frozen tokenizer
    assert module.cfg_dropout_prob == 0.1 and module.model_ema is None

    logits = torch.zeros(1, 2, 3, 4)
    logits[0, 1, :, 2] = 10.0  # codebook 2 is sure of code 2
    targets = torch.full((1, 2, 3), 2)
    mask = torch.ones(1, 2, 3, dtype=torch.bool)
    mask[0, 0, 2] = False
    total, per_codebook = codebook_cross_entropy(logits, targets, mask)
    assert abs(float(per_codebook[0]) - math.log(4)) < 1e-5 and float(per_codebook[1]) < 1e-3
    assert abs(float(total) - (float(per_codebook[0]) + float(per_codebook[1])) / 2) < 1e-6


def test_pre_encoded_tokens_train_like_on_the_fly_tokenization() -> None:
    config = tiny_lm_config(sample_size=SAMPLE_SIZE, pre_encoded=True)
    module = _module(config)
    audio = _tones()
    tokens = module.model.pretransform.tokenize(audio).float()  # what pre_encode --is-discrete saves, as loaded
    assert tokens.shape == (2, 32, NUM_QUANTIZERS)
    assert torch.equal(module.batch_codes(tokens), module.model.tokenize(audio))
    module.pre_encoded = False
    assert torch.equal(module.batch_codes(audio), module.model.tokenize(audio))


def test_train_cli_then_unwrap_gives_a_model_that_loads_and_generates(tmp_path: Path) -> None:
    dataset = write_tone_dataset(tmp_path / "data", files=2, seconds=0.1)
    config = tiny_lm_config(conditioned=False, sample_size=SAMPLE_SIZE, use_ema=True)
    model_config = tmp_path / "lm.json"
    model_config.write_text(json.dumps(config))
    run = train_cli("--model-config", str(model_config), "--dataset-config", str(dataset), "--max-steps", "12",
                    "--batch-size", "2", "--num-workers", "0", "--checkpoint-every", "100", "--name", "lm",
                    "--save-dir", str(tmp_path / "ckpt"), "--logger", "none", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert "model.lm.embeds.0.weight" in state and "model_ema.ema_model.lm.embeds.0.weight" in state
    assert int(state["model_ema.step"]) > 0  # 12 optimizer steps: the EMA updated at step 10

    out = unwrap_checkpoint(None, ckpt, tmp_path / "lm_model")
    loaded = load_local_model(out).model  # strict load of the exported EMA model
    assert torch.equal(loaded.state_dict()["lm.embeds.0.weight"], state["model_ema.ema_model.lm.embeds.0.weight"])
    generated = generate_lm(loaded, max_gen_len=8, seed=0)
    assert generated.audio.shape == (1, 1, 64) and np.isfinite(generated.audio.numpy()).all()


def test_demos_generate_per_cfg_scale_and_log_upstreams_files(tmp_path: Path, monkeypatch) -> None:
    config = tiny_lm_config(sample_size=SAMPLE_SIZE)
    config["training"]["demo"] = {"demo_every": 2, "demo_cfg_scales": [1, 3.5],
                                  "demo_cond": [{"label": "low"}, {"label": "high"}]}
    demo = build_demo_callback(config, TrainOptions(model_config="lm.json"), lambda bs: None)
    assert isinstance(demo, LMDemoCallback) and demo.num_demos == 2
    assert [demo.due(s) for s in (1, 2, 3)] == [True, False, True]
    module = _module(config)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a file store: no sqlite migrations in a unit test
    logger = MLFlowLogger(experiment_name="demos", tracking_uri=(tmp_path / "mlruns").as_uri())
    pl.Trainer(max_steps=3, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, accelerator="cpu", callbacks=[demo]).fit(
        module, DataLoader(_batches(_tones(), 3), batch_size=None))
    assert demo.logged == ["demos/step_000001", "demos/step_000003"]
    files = {a.path.split("/")[-1] for a in logger.experiment.list_artifacts(logger.run_id, "demos/step_000003")}
    assert files == {"demo_cfg_1.wav", "demo_melspec_left_cfg_1.png", "demo_cfg_3.5.wav",
                     "demo_melspec_left_cfg_3.5.png"}
    first, again = demo.generate(module, 3.5), demo.generate(module, 3.5)
    assert first.shape == (2, 1, SAMPLE_SIZE) and torch.equal(first, again)  # a fixed seed: comparable demos

    del config["training"]["demo"]["demo_cond"]  # a conditioned model cannot demo without conditioning
    assert build_demo_callback(config, TrainOptions(model_config="lm.json"), lambda bs: None) is None


def test_train_cli_on_pre_encoded_tokens(tmp_path: Path) -> None:
    """``pre_encode --is-discrete`` output of a dac_rvq autoencoder ([Q, T] tokens per item, cropped by the
    dataset's latent_crop_length) trains an lm model with ``training.pre_encoded``."""
    ae_config = {"model_type": "autoencoder", "sample_rate": 16000, "sample_size": 1600, "audio_channels": 1,
                 "model": tiny_autoencoder_config("dac_rvq")}
    torch.manual_seed(0)
    autoencoder = create_model_from_config(ae_config).eval()
    audio = write_tone_dataset(tmp_path / "data", files=4, seconds=0.1)
    pre_encode_dataset(autoencoder, ae_config, load_dataset_config(audio), tmp_path / "tokens", batch_size=2,
                       sample_size=1600, num_workers=0, progress=False, is_discrete=True)
    dataset = tmp_path / "tokens.json"
    dataset.write_text(json.dumps({"dataset_type": "pre_encoded", "latent_crop_length": 16,
                                   "datasets": [{"id": "tokens", "path": str(tmp_path / "tokens")}]}))
    model_config = tmp_path / "lm.json"
    model_config.write_text(json.dumps(tiny_lm_config("dac_rvq", conditioned=False, sample_size=SAMPLE_SIZE,
                                                      pre_encoded=True)))
    run = train_cli("--model-config", str(model_config), "--dataset-config", str(dataset), "--max-steps", "4",
                    "--batch-size", "2", "--num-workers", "0", "--logger", "none", "--save-dir",
                    str(tmp_path / "ckpt"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "(step 4)" in run.stdout

    # rvq tokens are [T, Q] per item: cropping them on the last axis is refused with the reason
    module = _module(tiny_lm_config(sample_size=SAMPLE_SIZE, pre_encoded=True))
    with pytest.raises(DatasetError, match="leave it unset"):
        module.batch_codes(torch.zeros(2, 32, 16))
