"""diffusion_autoencoder training: upstream's wrapped key layout, learning, EMA, unwrap -> encode/decode."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, load_state_dict_checked
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.demo_callbacks import build_demo_callback
from stable_audio_ops.training.diffusion_autoencoder import DiffusionAutoencoderTrainingModule
from stable_audio_ops.training.diffusion_autoencoder_demos import DiffusionAutoencoderDemoCallback
from stable_audio_ops.training.options import TrainOptions
from tests.training import diffusion_fixtures as fixtures

UNET = {**fixtures.TINY_UNET, "context_channels": [3]}  # the latents (3 channels) come in by concatenation
CONFIG = {
    "model_type": "diffusion_autoencoder", "sample_size": 64, "sample_rate": 16000, "audio_channels": 1,
    "model": {
        "encoder": {"type": "oobleck", "config": {"in_channels": 1, "channels": 4, "c_mults": [1, 2],
                                                  "strides": [2, 2], "latent_dim": 6, "use_snake": True}},
        "bottleneck": {"type": "vae"},
        "diffusion": {"type": "adp_1d", "config": UNET},
        "latent_dim": 3, "downsampling_ratio": 4, "io_channels": 1,
    },
    "training": {"learning_rate": 3e-3},
}


def _batch(n: int = 4, length: int = 64) -> tuple[torch.Tensor, tuple[dict, ...]]:
    """Two tones, each twice: the latents must tell the decoder which one to draw."""
    t = torch.arange(length) / 16000
    audio = torch.stack([0.5 * torch.sin(2 * torch.pi * (1000.0 if i % 2 else 2000.0) * t)[None] for i in range(n)])
    return audio, tuple({} for _ in range(n))


def _fixed_loss(module: DiffusionAutoencoderTrainingModule, audio: torch.Tensor) -> float:
    """v-MSE at fixed noise levels and noise, conditioned on the encoder's mean latents."""
    model = module.diffae
    with torch.no_grad():
        latents = model.encode(audio, noise=torch.zeros(audio.shape[0], 3, 16))
        cond = model.diffusion_conditioning(latents, skip_bottleneck=True)
    return fixtures.fixed_v_loss(lambda noised, t: model.diffusion(noised, t, input_concat_cond=cond), audio)


def test_state_dict_layout_is_upstreams_wrapper() -> None:
    module = fixtures.build_module(CONFIG)
    keys = set(module.state_dict())
    model_keys = set(create_model_from_config(copy.deepcopy(CONFIG)).state_dict())
    assert {k.removeprefix("diffae.") for k in keys if k.startswith("diffae.")} == model_keys
    assert {k.removeprefix("diffae_ema.ema_model.") for k in keys if k.startswith("diffae_ema.ema_model.")} == model_keys
    assert {"diffae_ema.initted", "diffae_ema.step", "losses.losses.0.weight", "losses.losses.1.weight"} <= keys
    assert not any(k.startswith("diffae_ema.online_model.") for k in keys)
    assert "diffae.encoder.layers.0.weight_v" in keys and "diffae.diffusion.model.to_out.block.to_out.weight" in keys
    assert module.diffae_ema.beta == 0.9999 and module.diffae_ema.update_after_step == 1
    assert [term.name for term in module.losses.losses] == ["mse_loss", "kl_loss"]
    fixtures.build_module(CONFIG).load_state_dict(module.state_dict(), strict=True)


def test_loss_falls_on_one_repeated_batch_and_ema_follows() -> None:
    module = fixtures.build_module(CONFIG)
    batch = _batch()
    before = _fixed_loss(module, batch[0])
    ema_before = [p.clone() for p in module.diffae_ema.ema_model.parameters()]
    trainer = fixtures.fit(module, batch, steps=40)
    after = _fixed_loss(module, batch[0])
    assert after < 0.7 * before, (before, after)
    assert int(module.diffae_ema.step) == 40
    assert all(not torch.equal(p, q) for p, q in zip(module.diffae_ema.ema_model.parameters(), ema_before, strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(module.diffae_ema.ema_model.parameters(),
                                                      module.diffae.parameters(), strict=True))
    assert {"train/loss", "train/mse_loss", "train/kl_loss", "train/latent_std"} <= set(trainer.callback_metrics)


def test_reconstruction_loss_trains_with_an_mrstft_term() -> None:
    config = copy.deepcopy(CONFIG)
    config["training"]["use_reconstruction_loss"] = True
    module = fixtures.build_module(config)
    trainer = fixtures.fit(module, _batch(2, length=4096), steps=2)  # the 2048-point STFT needs > 2048 samples
    assert [term.name for term in module.losses.losses] == ["mse_loss", "kl_loss", "mrstft_loss"]
    value = trainer.callback_metrics["train/mrstft_loss"]
    assert torch.isfinite(value) and value > 0


def test_unwrap_loads_strictly_and_encodes_decodes(tmp_path: Path) -> None:
    module = fixtures.build_module(CONFIG)
    fixtures.fit(module, _batch(), steps=3)
    state = load_ckpt_state_dict(fixtures.unwrap_state(module.state_dict(), CONFIG, tmp_path))
    key = "diffusion.model.to_out.block.to_out.weight"
    assert torch.equal(state[key], module.diffae_ema.ema_model.state_dict()[key])
    assert not torch.equal(state[key], module.diffae.state_dict()[key])
    model = create_model_from_config(copy.deepcopy(CONFIG))
    load_state_dict_checked(model, state, strict=True)
    with torch.no_grad():
        latents = model.eval().encode(_batch(2)[0])
        audio = model.decode(latents, steps=4, generator=torch.Generator().manual_seed(0))
    assert latents.shape == (2, 3, 16) and audio.shape == (2, 1, 64) and torch.isfinite(audio).all()
    # the config says EMA: a checkpoint from a run without it names the key to change
    no_ema = {k: v for k, v in module.state_dict().items() if not k.startswith("diffae_ema.")}
    with pytest.raises(CheckpointError, match="set training.use_ema to false"):
        fixtures.unwrap_state(no_ema, CONFIG, tmp_path, name="plain")


@pytest.mark.parametrize(("training", "pattern"), [
    ({}, r"model_config\.json: training\.learning_rate: missing required key"),
    ({"learning_rate": 1e-4, "use_reconstruction_loss": 1}, r"training\.use_reconstruction_loss: expected a bool"),
    ({"learning_rate": 1e-4, "use_ema": "no"}, r"training\.use_ema: expected a bool"),
])
def test_config_errors_name_the_key(training: dict, pattern: str) -> None:
    config = dict(copy.deepcopy(CONFIG), training=training)
    with pytest.raises(ConfigError, match=pattern):
        fixtures.build_module(config)


def test_train_run_checkpoint_unwraps_with_its_embedded_config(tmp_path: Path) -> None:
    """What ``train.py`` does with a diffusion_autoencoder config (it used to say "unknown model type")."""
    result = fixtures.train_and_unwrap(CONFIG, tmp_path, max_steps=3)
    assert result.last_step == 3 and "train/kl_loss" in result.metrics


def test_demos_reconstruct_with_the_diffusion_decoder_in_demo_steps(tmp_path: Path, monkeypatch) -> None:
    config = copy.deepcopy(CONFIG)
    config["training"]["demo"] = {"demo_every": 2, "demo_steps": 2, "max_demos": 2}
    # a deterministic encoder (the VAE samples its latents), so only the decode noise could vary
    config["model"]["bottleneck"] = {"type": "tanh"}
    config["model"]["encoder"]["config"]["latent_dim"] = 3
    batch = _batch(2)
    demo = build_demo_callback(config, TrainOptions(model_config="model_config.json", batch_size=2),
                               lambda bs: [batch])
    assert isinstance(demo, DiffusionAutoencoderDemoCallback) and demo.demo_steps == 2
    module = fixtures.build_module(config)
    logger = fixtures.fit_with_demos(module, demo, _batch(), tmp_path, monkeypatch)
    assert demo.logged == ["demos/step_000001", "demos/step_000003"]
    assert fixtures.artifact_names(logger, "demos/step_000003") == {"recon.wav", "recon_spectrogram.png"}
    reals, fakes = demo.reconstruct(module)
    assert torch.equal(reals, batch[0]) and fakes.shape == (2, 1, 64) and torch.isfinite(fakes).all()
    torch.manual_seed(99)
    assert torch.equal(fakes, demo.reconstruct(module)[1])  # seeded decode noise: demos are comparable
