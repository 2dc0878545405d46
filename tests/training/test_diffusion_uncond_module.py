"""diffusion_uncond training: upstream's wrapped key layout, learning on a repeated batch, EMA, unwrap -> generate."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.inference.generation import generate_diffusion_uncond
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, load_state_dict_checked
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.demo_callbacks import build_demo_callback
from stable_audio_ops.training.diffusion_uncond_demos import DiffusionUncondDemoCallback
from stable_audio_ops.training.options import TrainOptions
from tests.training import diffusion_fixtures as fixtures
from tests.training.train_fixtures import write_tone_dataset

ADP = {"model_type": "diffusion_uncond", "sample_size": 64, "sample_rate": 16000, "audio_channels": 1,
       "model": {"type": "adp_uncond_1d", "config": fixtures.TINY_UNET}, "training": {"learning_rate": 3e-3}}
DIT = {"model_type": "diffusion_uncond", "sample_size": 64, "sample_rate": 16000,
       "model": {"type": "dit", "config": {"in_channels": 1, "embed_dim": 32, "depth": 1, "num_heads": 1}},
       "training": {"learning_rate": 3e-3}}
DAU = {"model_type": "diffusion_uncond", "sample_size": 64, "sample_rate": 16000,
       "model": {"type": "DAU1d", "config": {"io_channels": 1, "depth": 3, "n_attn_layers": 1, "channels": [32, 32, 64],
                                            "strides": [2, 2], "kernel_size": 3}},
       "training": {"learning_rate": 3e-3}}


def _batch(n: int = 4) -> tuple[torch.Tensor, tuple[dict, ...]]:
    """One tone, ``n`` times (a data set the tiny models can memorise in a few steps)."""
    t = torch.arange(64) / 16000
    audio = (0.5 * torch.sin(2 * torch.pi * 1000.0 * t))[None, None].repeat(n, 1, 1)
    return audio, tuple({"padding_mask": torch.ones(64)} for _ in range(n))


@pytest.mark.parametrize(("config", "key"), [(ADP, "model.model.to_out.block.to_out.weight"),
                                             (DIT, "model.model.postprocess_conv.weight"),
                                             (DAU, "model.net.6.main.3.weight")])
def test_state_dict_layout_is_upstreams_wrapper(config: dict, key: str) -> None:
    module = fixtures.build_module(config)
    keys = set(module.state_dict())
    assert f"diffusion.{key}" in keys
    inner = key.removeprefix("model.")
    assert {f"diffusion_ema.ema_model.{inner}", f"diffusion_ema.online_model.{inner}"} <= keys
    assert {"diffusion_ema.initted", "diffusion_ema.step", "losses.losses.0.weight"} <= keys
    backbone = {k.removeprefix("diffusion.model.") for k in keys if k.startswith("diffusion.model.")}
    ema = {k.removeprefix("diffusion_ema.ema_model.") for k in keys if k.startswith("diffusion_ema.ema_model.")}
    assert backbone == ema
    assert module.diffusion_ema.beta == 0.9999 and module.diffusion_ema.update_after_step == 1
    fixtures.build_module(config).load_state_dict(module.state_dict(), strict=True)


@pytest.mark.parametrize(("config", "steps"), [(ADP, 40), (DIT, 200), (DAU, 40)],
                         ids=["adp_uncond_1d", "dit", "DAU1d"])
def test_loss_falls_on_one_repeated_batch_and_ema_follows(config: dict, steps: int) -> None:
    module = fixtures.build_module(config)
    batch = _batch()
    before = fixtures.fixed_v_loss(module.diffusion, batch[0])
    ema_before = [p.clone() for p in module.diffusion_ema.ema_model.parameters()]
    trainer = fixtures.fit(module, batch, steps=steps)
    after = fixtures.fixed_v_loss(module.diffusion, batch[0])
    assert after < 0.7 * before, (before, after)
    assert int(module.diffusion_ema.step) == steps
    moved = [not torch.equal(p, q) for p, q in zip(module.diffusion_ema.ema_model.parameters(), ema_before, strict=True)]
    assert all(moved)
    # the EMA is an average, not a copy: it lags behind the online weights
    online = list(module.diffusion.model.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(module.diffusion_ema.ema_model.parameters(), online, strict=True))
    assert {"train/loss", "train/std_data", "train/mse_loss"} <= set(trainer.callback_metrics)


def test_unwrap_loads_strictly_and_generates(tmp_path: Path) -> None:
    module = fixtures.build_module(ADP)
    fixtures.fit(module, _batch(), steps=3)
    state = load_ckpt_state_dict(fixtures.unwrap_state(module.state_dict(), ADP, tmp_path))
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
        fixtures.build_module(config)


def test_train_run_checkpoint_unwraps_with_its_embedded_config(tmp_path: Path) -> None:
    """What ``train.py`` does with a diffusion_uncond config (it used to say "unknown model type for training")."""
    result = fixtures.train_and_unwrap(ADP, tmp_path, max_steps=4, val_every=2,
                                       val_dataset_config=str(write_tone_dataset(tmp_path / "val", 2)))
    assert result.last_step == 4 and "val/avg_loss" in result.metrics


def test_demos_sample_the_ema_backbone_from_fixed_noise_and_log_upstreams_files(tmp_path: Path,
                                                                                monkeypatch) -> None:
    config = copy.deepcopy(ADP)
    config["training"]["demo"] = {"demo_every": 2, "demo_steps": 3, "num_demos": 2}
    options = TrainOptions(model_config="model_config.json")
    demo = build_demo_callback(config, options, lambda bs: None)
    assert isinstance(demo, DiffusionUncondDemoCallback) and [demo.due(s) for s in (1, 2, 3)] == [True, False, True]
    module = fixtures.build_module(config)
    logger = fixtures.fit_with_demos(module, demo, _batch(), tmp_path, monkeypatch)
    assert demo.logged == ["demos/step_000001", "demos/step_000003"]
    assert fixtures.artifact_names(logger, "demos/step_000003") == {"demo.wav", "demo_melspec_left.png"}
    first, again = demo.generate(module), demo.generate(module)
    assert first.shape == (2, 1, 64) and torch.isfinite(first).all() and torch.equal(first, again)


def test_pre_encoded_latents_train_like_latents_encoded_on_the_fly() -> None:
    config = copy.deepcopy(DIT)
    config["model"]["config"]["in_channels"] = 4
    config["model"]["pretransform"] = {"type": "patched", "config": {"channels": 1, "patch_size": 4}}
    on_the_fly = fixtures.build_module(config)
    config["training"]["pre_encoded"] = True
    pre_encoded = fixtures.build_module(config)
    audio, meta = _batch()
    latents = on_the_fly.diffusion.pretransform.encode(audio)
    x, masks = on_the_fly.diffusion_input(audio, meta)
    y, _ = pre_encoded.diffusion_input(latents, meta)
    assert x.shape == (4, 4, 16) and masks.shape == (4, 16) and torch.equal(x, y)
    fixtures.fit(pre_encoded, (latents, meta), steps=2)
    assert int(pre_encoded.diffusion_ema.step) == 2
