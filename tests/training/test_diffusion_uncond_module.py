"""diffusion_uncond training: upstream's wrapped key layout, learning on a repeated batch, EMA, unwrap -> generate."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import MLFlowLogger

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.inference.generation import generate_diffusion_uncond
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, load_state_dict_checked
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.demo_callbacks import build_demo_callback
from stable_audio_ops.training.diffusion_uncond import DiffusionUncondTrainingModule
from stable_audio_ops.training.diffusion_uncond_demos import DiffusionUncondDemoCallback
from stable_audio_ops.training.factory import create_training_module_from_config
from stable_audio_ops.training.options import TrainOptions
from stable_audio_ops.training.run import run_training
from stable_audio_ops.training.timesteps import noise_and_target
from stable_audio_ops.training.unwrap import unwrap_checkpoint
from tests.training.train_fixtures import write_tone_dataset

UNET = {"in_channels": 1, "channels": 8, "multipliers": [1, 2, 4], "factors": [2, 2], "num_blocks": [1, 1],
        "attentions": [0, 0, 1], "attention_heads": 2, "attention_multiplier": 2, "resnet_groups": 4}
ADP = {"model_type": "diffusion_uncond", "sample_size": 64, "sample_rate": 16000, "audio_channels": 1,
       "model": {"type": "adp_uncond_1d", "config": UNET}, "training": {"learning_rate": 3e-3}}
DIT = {"model_type": "diffusion_uncond", "sample_size": 64, "sample_rate": 16000,
       "model": {"type": "dit", "config": {"in_channels": 1, "embed_dim": 32, "depth": 1, "num_heads": 1}},
       "training": {"learning_rate": 3e-3}}


def _module(config: dict) -> DiffusionUncondTrainingModule:
    config = copy.deepcopy(config)
    torch.manual_seed(0)
    return create_training_module_from_config(config, create_model_from_config(config), source="model_config.json")


def _batch(n: int = 4) -> tuple[torch.Tensor, tuple[dict, ...]]:
    """One tone, ``n`` times (a data set the tiny models can memorise in a few steps)."""
    t = torch.arange(64) / 16000
    audio = (0.5 * torch.sin(2 * torch.pi * 1000.0 * t))[None, None].repeat(n, 1, 1)
    return audio, tuple({"padding_mask": torch.ones(64)} for _ in range(n))


def _fixed_loss(module: DiffusionUncondTrainingModule, audio: torch.Tensor) -> float:
    """v-MSE at fixed noise levels and noise (independent of the training sampler)."""
    gen = torch.Generator().manual_seed(123)
    total = 0.0
    with torch.no_grad():
        for value in (0.2, 0.5, 0.8):
            t = torch.full((audio.shape[0],), value)
            noised, target = noise_and_target(audio, t, "v", noise=torch.randn(audio.shape, generator=gen))
            total += torch.mean((module.diffusion(noised, t) - target) ** 2).item()
    return total / 3


def _fit(module: pl.LightningModule, batch, steps: int) -> pl.Trainer:
    loader = torch.utils.data.DataLoader([0] * steps, batch_size=1, collate_fn=lambda _: batch)
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, loader)
    return trainer


@pytest.mark.parametrize(("config", "key"), [(ADP, "model.model.to_out.block.to_out.weight"),
                                             (DIT, "model.model.postprocess_conv.weight")])
def test_state_dict_layout_is_upstreams_wrapper(config: dict, key: str) -> None:
    module = _module(config)
    keys = set(module.state_dict())
    assert f"diffusion.{key}" in keys
    inner = key.removeprefix("model.")
    assert {f"diffusion_ema.ema_model.{inner}", f"diffusion_ema.online_model.{inner}"} <= keys
    assert {"diffusion_ema.initted", "diffusion_ema.step", "losses.losses.0.weight"} <= keys
    backbone = {k.removeprefix("diffusion.model.") for k in keys if k.startswith("diffusion.model.")}
    ema = {k.removeprefix("diffusion_ema.ema_model.") for k in keys if k.startswith("diffusion_ema.ema_model.")}
    assert backbone == ema
    assert module.diffusion_ema.beta == 0.9999 and module.diffusion_ema.update_after_step == 1
    _module(config).load_state_dict(module.state_dict(), strict=True)


@pytest.mark.parametrize(("config", "steps"), [(ADP, 40), (DIT, 200)], ids=["adp_uncond_1d", "dit"])
def test_loss_falls_on_one_repeated_batch_and_ema_follows(config: dict, steps: int) -> None:
    module = _module(config)
    batch = _batch()
    before = _fixed_loss(module, batch[0])
    ema_before = [p.clone() for p in module.diffusion_ema.ema_model.parameters()]
    trainer = _fit(module, batch, steps=steps)
    after = _fixed_loss(module, batch[0])
    assert after < 0.7 * before, (before, after)
    assert int(module.diffusion_ema.step) == steps
    moved = [not torch.equal(p, q) for p, q in zip(module.diffusion_ema.ema_model.parameters(), ema_before, strict=True)]
    assert all(moved)
    # the EMA is an average, not a copy: it lags behind the online weights
    online = list(module.diffusion.model.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(module.diffusion_ema.ema_model.parameters(), online, strict=True))
    assert {"train/loss", "train/std_data", "train/mse_loss"} <= set(trainer.callback_metrics)


def test_unwrap_loads_strictly_and_generates(tmp_path: Path) -> None:
    module = _module(ADP)
    _fit(module, _batch(), steps=3)
    torch.save({"state_dict": module.state_dict(), "model_config": ADP}, tmp_path / "run.ckpt")
    out = unwrap_checkpoint(None, tmp_path / "run.ckpt", tmp_path / "uncond")
    state = load_ckpt_state_dict(out)
    assert set(state) == set(module.export_state_dict())
    key = "model.model.to_out.block.to_out.weight"
    assert torch.equal(state[key], module.diffusion_ema.ema_model.state_dict()[key.removeprefix("model.")])
    assert not torch.equal(state[key], module.diffusion.state_dict()[key])
    model = create_model_from_config(ADP)
    load_state_dict_checked(model, state, strict=True)
    audio = generate_diffusion_uncond(model.eval(), steps=4, batch_size=2, sample_size=64, seed=1, progress=False)
    assert audio.shape == (2, 1, 64) and torch.isfinite(audio).all()


@pytest.mark.parametrize(("training", "pattern"), [
    ({}, r"model_config\.json: training\.learning_rate: missing required key"),
    ({"learning_rate": 1e-4, "lora_config": {"rank": 4}}, r"training\.lora_config: LoRA fine-tuning"),
    ({"learning_rate": 1e-4, "timestep_sampler": "nope"}, r"training\.timestep_sampler: .*'nope'"),
    ({"learning_rate": 1e-4, "pre_encoded": "yes"}, r"training\.pre_encoded: expected a bool"),
])
def test_config_errors_name_the_key(training: dict, pattern: str) -> None:
    config = dict(copy.deepcopy(ADP), training=training)
    with pytest.raises(ConfigError, match=pattern):
        _module(config)


def test_train_run_checkpoint_unwraps_with_its_embedded_config(tmp_path: Path) -> None:
    """What ``train.py`` does with a diffusion_uncond config (it used to say "unknown model type for training")."""
    config_path = tmp_path / "model_config.json"
    config_path.write_text(json.dumps(ADP))
    options = TrainOptions(model_config=str(config_path), dataset_config=str(write_tone_dataset(tmp_path / "data", 4)),
                           val_dataset_config=str(write_tone_dataset(tmp_path / "val", 2)), val_every=2,
                           batch_size=2, num_workers=0, logger="none", precision="32", max_steps=4,
                           save_dir=str(tmp_path / "ckpt"), accelerator="cpu")
    result = run_training(options)
    assert result.last_step == 4 and "val/avg_loss" in result.metrics
    model = create_model_from_config(ADP)
    load_state_dict_checked(model, load_ckpt_state_dict(unwrap_checkpoint(None, result.checkpoint_path,
                                                                          tmp_path / "model")), strict=True)


def test_demos_sample_the_ema_backbone_from_fixed_noise_and_log_upstreams_files(tmp_path: Path,
                                                                                monkeypatch) -> None:
    config = copy.deepcopy(ADP)
    config["training"]["demo"] = {"demo_every": 2, "demo_steps": 3, "num_demos": 2}
    options = TrainOptions(model_config="model_config.json")
    demo = build_demo_callback(config, options, lambda bs: None)
    assert isinstance(demo, DiffusionUncondDemoCallback) and [demo.due(s) for s in (1, 2, 3)] == [True, False, True]
    module = _module(config)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a file store: no sqlite migrations in a unit test
    logger = MLFlowLogger(experiment_name="demos", tracking_uri=(tmp_path / "mlruns").as_uri())
    loader = torch.utils.data.DataLoader([0] * 3, batch_size=1, collate_fn=lambda _: _batch())
    pl.Trainer(max_steps=3, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, accelerator="cpu", callbacks=[demo]).fit(module, loader)
    assert demo.logged == ["demos/step_000001", "demos/step_000003"]
    files = {a.path.split("/")[-1] for a in logger.experiment.list_artifacts(logger.run_id, "demos/step_000003")}
    assert files == {"demo.wav", "demo_melspec_left.png"}
    first, again = demo.generate(module), demo.generate(module)
    assert first.shape == (2, 1, 64) and torch.isfinite(first).all() and torch.equal(first, again)


def test_pre_encoded_latents_train_like_latents_encoded_on_the_fly() -> None:
    config = copy.deepcopy(DIT)
    config["model"]["config"]["in_channels"] = 4
    config["model"]["pretransform"] = {"type": "patched", "config": {"channels": 1, "patch_size": 4}}
    on_the_fly = _module(config)
    config["training"]["pre_encoded"] = True
    pre_encoded = _module(config)
    audio, meta = _batch()
    latents = on_the_fly.diffusion.pretransform.encode(audio)
    x, masks = on_the_fly.diffusion_input(audio, meta)
    y, _ = pre_encoded.diffusion_input(latents, meta)
    assert x.shape == (4, 4, 16) and masks.shape == (4, 16) and torch.equal(x, y)
    _fit(pre_encoded, (latents, meta), steps=2)
    assert int(pre_encoded.diffusion_ema.step) == 2
