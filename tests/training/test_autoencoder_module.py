"""AutoencoderTrainingModule: upstream checkpoint layout, loss assembly, GAN schedule, and that it learns."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.autoencoder import is_ema_update_step
from stable_audio_ops.training.factory import create_training_module_from_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "unwrap_autoencoder"


def fixture_config() -> dict:
    return json.loads((FIXTURE / "model_config.json").read_text())


def build(config: dict):
    return create_training_module_from_config(config, create_model_from_config(config))


def stereo_config(config: dict) -> dict:
    cfg = copy.deepcopy(config)
    cfg["audio_channels"] = 2
    cfg["model"]["io_channels"] = 2
    cfg["model"]["encoder"]["config"]["in_channels"] = 2
    cfg["model"]["decoder"]["config"]["out_channels"] = 2
    return cfg


def test_upstream_training_checkpoint_loads_strictly():
    module = build(fixture_config())
    wrapped = torch.load(FIXTURE / "wrapped.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(wrapped, strict=True)
    ours = module.state_dict()
    assert set(ours) == set(wrapped)
    assert torch.equal(ours["autoencoder_ema.step"], wrapped["autoencoder_ema.step"])
    key = "encoder.layers.0.weight_v"
    assert torch.equal(module.autoencoder_ema.ema_model.state_dict()[key], wrapped[f"autoencoder_ema.ema_model.{key}"])


def test_generator_terms_in_upstream_order_mono_and_stereo():
    mono = build(fixture_config())
    assert mono.losses_gen.names == ["loss_adv", "feature_matching_loss", "mrstft_loss", "kl_loss"]
    assert [float(t.weight) for t in mono.losses_gen.losses] == pytest.approx([0.1, 5.0, 1.0, 1e-4])
    assert mono.losses_disc.names == ["discriminator_loss"]

    cfg = stereo_config(fixture_config())
    cfg["training"]["loss_configs"]["time"]["weights"] = {"l1": 0.5, "l2": 0.25}
    stereo = build(cfg)
    # 0.0.20: one lr_stft_loss at the full mrstft weight (0.0.19 had stft_loss_left/right at half each)
    assert stereo.losses_gen.names == [
        "loss_adv", "feature_matching_loss", "mrstft_loss", "lr_stft_loss", "l1_time_loss", "l2_time_loss",
        "kl_loss",
    ]
    weights = {t.name: float(t.weight) for t in stereo.losses_gen.losses}
    assert weights["lr_stft_loss"] == pytest.approx(1.0)


def test_stereo_lr_stft_loss_is_the_mean_of_the_channel_losses_as_0_0_20():
    cfg = stereo_config(fixture_config())
    del cfg["training"]["loss_configs"]["discriminator"]
    module = build(cfg)
    torch.manual_seed(0)
    reals = torch.randn(2, 2, 512)
    decoded = reals + 0.3 * torch.randn(2, 2, 512)
    info = {"reals": reals, "decoded": decoded, "kl": torch.tensor(0.5)}
    total, losses = module.losses_gen(info)
    assert list(losses) == ["mrstft_loss", "lr_stft_loss", "kl_loss"]
    mrstft = module.lrstft  # the plain multi-resolution STFT loss; the term calls it (reals, decoded)
    left = mrstft(reals[:, :1], decoded[:, :1])
    right = mrstft(reals[:, 1:], decoded[:, 1:])
    assert losses["lr_stft_loss"] == pytest.approx(float((left + right) / 2), rel=1e-5)
    by_hand = module.sdstft(reals, decoded) + (left + right) / 2 + 1e-4 * 0.5
    assert float(total) == pytest.approx(float(by_hand), rel=1e-5)
    # 0.0.19's stft_loss_left/right at half weight summed to the same number: only names and layout changed
    assert float(left / 2 + right / 2) == pytest.approx(float(losses["lr_stft_loss"]), rel=1e-5)


def test_ema_settings_and_cadence_follow_0_0_20():
    module = build(fixture_config())
    ema = module.autoencoder_ema
    assert (ema.beta, ema.power, ema.update_every, ema.update_after_step) == (0.999, 0.75, 1, 2000)
    # generator steps run at even global steps; 0.0.20 updates after those that leave global_step at 10k+9
    generator_steps = range(0, 60, 2)
    assert [g for g in generator_steps if is_ema_update_step(g + 1)] == [8, 18, 28, 38, 48, 58]
    # without a discriminator every step is a generator step: still one update per 10 global steps
    assert [g for g in range(40) if is_ema_update_step(g + 1)] == [8, 18, 28, 38]


def test_defaults_without_loss_configs_or_ema():
    cfg = fixture_config()
    del cfg["training"]["loss_configs"]
    del cfg["training"]["use_ema"]
    module = build(cfg)
    assert module.autoencoder_ema is None
    assert not any(k.startswith("autoencoder_ema.") for k in module.state_dict())
    assert module.loss_config["discriminator"]["config"]["filters"] == 32
    assert module.losses_gen.names[:3] == ["loss_adv", "feature_matching_loss", "mrstft_loss"]


def test_optional_mel_term_comes_last_and_bad_mel_config_names_the_key():
    cfg = fixture_config()
    cfg["training"]["loss_configs"]["mel"] = {"type": "multiscale_mel", "config": {}, "weights": {"mel": 2.0}}
    module = build(cfg)
    assert module.losses_gen.names == ["loss_adv", "feature_matching_loss", "mrstft_loss", "kl_loss", "mel_loss"]
    assert float(module.losses_gen.losses[-1].weight) == 2.0
    # an upstream training checkpoint still loads strictly: the mel term adds only its weight buffer, at the end
    wrapped = torch.load(FIXTURE / "wrapped.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert set(module.state_dict()) - set(wrapped) == {"losses_gen.losses.4.weight"}

    assert module.losses_gen.losses[-1].start_step == 0  # on from the first step unless asked
    cfg["training"]["loss_configs"]["mel"]["start_step"] = 600
    assert build(cfg).losses_gen.losses[-1].start_step == 600
    cfg["training"]["loss_configs"]["mel"]["start_step"] = -1
    with pytest.raises(ConfigError, match=r"training.loss_configs.mel.start_step"):
        build(cfg)
    del cfg["training"]["loss_configs"]["mel"]["start_step"]

    cfg["training"]["loss_configs"]["mel"]["type"] = "mel_gan"
    with pytest.raises(ConfigError, match=r"training.loss_configs.mel.type.*multiscale_mel"):
        build(cfg)
    cfg["training"]["loss_configs"]["mel"].update(type="multiscale_mel", config={"window_lengths": [32, 64]})
    with pytest.raises(ConfigError, match=r"training.loss_configs.mel.config"):
        build(cfg)


def test_loss_configs_need_spectral_and_time():
    cfg = fixture_config()
    del cfg["training"]["loss_configs"]["spectral"]
    with pytest.raises(ConfigError, match="training.loss_configs.spectral"):
        build(cfg)


def test_discriminator_alternation_and_warmup_modes():
    cfg = fixture_config()
    cfg["training"]["warmup_steps"] = 4
    module = build(cfg)
    assert [module.is_discriminator_step(s) for s in range(6)] == [False, True, False, True, False, True]
    cfg["training"]["warmup_mode"] = "full"
    full = build(cfg)
    assert [full.is_discriminator_step(s) for s in range(7)] == [False] * 5 + [True, False]
    del cfg["training"]["loss_configs"]["discriminator"]
    no_disc = build(cfg)
    assert no_disc.discriminator is None and not any(no_disc.is_discriminator_step(s) for s in range(6))


class RecordLosses(pl.Callback):
    def __init__(self):
        self.rows: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows.append({k: float(v) for k, v in trainer.callback_metrics.items()} | {"step": trainer.global_step})


def fit_one_batch(config: dict, steps: int, seed: int = 0):
    pl.seed_everything(seed, workers=True)
    module = build(config)
    t = torch.arange(config["sample_size"]) / config["sample_rate"]
    audio = torch.stack([0.5 * torch.sin(2 * torch.pi * f * t) for f in (220.0, 660.0)]).unsqueeze(1)
    batch = (audio, ({}, {}))
    loader = torch.utils.data.DataLoader([batch] * steps, batch_size=None)
    recorder = RecordLosses()
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder])
    trainer.fit(module, loader)
    return module, recorder.rows, trainer


def test_training_on_one_repeated_batch_reduces_reconstruction_loss():
    cfg = fixture_config()
    cfg["sample_size"] = 512
    cfg["training"]["warmup_steps"] = 10
    for name in ("autoencoder", "discriminator"):
        cfg["training"]["optimizer_configs"][name]["optimizer"]["config"]["lr"] = 3e-3
    steps = 30
    module, rows, trainer = fit_one_batch(cfg, steps)
    assert trainer.global_step == steps
    gen_rows = [r for r in rows if r["step"] % 2 == 1]  # after an even (generator) step
    first, last = gen_rows[0]["train/mrstft_loss"], gen_rows[-1]["train/mrstft_loss"]
    assert last < 0.8 * first, (first, last)
    # warm-up: no adversarial terms before warmup_steps, then they are live
    assert gen_rows[0]["train/loss_adv"] == 0.0 and gen_rows[-1]["train/loss_adv"] != 0.0
    assert "train/discriminator_loss" in rows[-1]
    # EMA as 0.0.20: updated after the generator steps at global steps 8, 18 and 28 only, and still in its
    # copy phase (update_after_step 2000), so it holds the online weights of step 28, the last generator step
    assert int(module.autoencoder_ema.step) == 3
    online = module.autoencoder.state_dict()["decoder.layers.0.weight_v"]
    assert torch.equal(module.autoencoder_ema.ema_model.state_dict()["decoder.layers.0.weight_v"], online)


def test_schedulers_step_every_optimizer_step_and_lr_is_logged():
    cfg = fixture_config()
    cfg["sample_size"] = 256
    for name in ("autoencoder", "discriminator"):
        cfg["training"]["optimizer_configs"][name]["scheduler"] = {
            "type": "InverseLR", "config": {"inv_gamma": 1.0, "power": 1.0, "warmup": 0.0}
        }
    module, rows, _ = fit_one_batch(cfg, 6)
    gen_lrs = [r["train/gen_lr"] for r in rows if r["step"] % 2 == 1]
    disc_lrs = [r["train/disc_lr"] for r in rows if r["step"] % 2 == 0]
    base = 1e-4  # logged after the scheduler step, as upstream: the LR the next step will use
    assert gen_lrs == pytest.approx([base / (2 + k) for k in range(3)], rel=1e-6)
    assert disc_lrs == pytest.approx([base / (2 + k) for k in range(3)], rel=1e-6)
    assert {"train/loss", "train/latent_std", "train/data_std", "train/kl_loss"} <= set(rows[-1])


BOTTLENECK_CASES = {
    # type: (bottleneck config, encoder channels per latent, extra decoder channels, expected bottleneck terms)
    "rvq": ({"dim": 4, "codebook_size": 8, "num_quantizers": 2, "kmeans_iters": 2, "threshold_ema_dead_code": 1},
            1, 0, ["quantizer_loss"]),
    "rvq_vae": ({"dim": 4, "codebook_size": 8, "num_quantizers": 2, "kmeans_iters": 2}, 2, 0,
                ["kl_loss", "quantizer_loss"]),
    "dac_rvq": ({"input_dim": 4, "n_codebooks": 2, "codebook_size": 8, "codebook_dim": 2, "quantizer_dropout": 0.5},
                1, 0, ["codebook_loss", "commitment_loss"]),
    "dac_rvq_vae": ({"input_dim": 4, "n_codebooks": 2, "codebook_size": 8, "codebook_dim": 2}, 2, 0,
                    ["kl_loss", "codebook_loss", "commitment_loss"]),
    "fsq": ({"levels": [5, 5, 5, 5]}, 1, 0, []),
    "dithered_fsq": ({"dim": 4, "levels": 5}, 1, 0, []),
    "wasserstein": ({"noise_augment_dim": 1, "use_tanh": True}, 1, 1, ["mmd_loss"]),
}


def bottleneck_config(kind: str, with_discriminator: bool = True) -> dict:
    """The fixture's tiny config with ``kind`` as bottleneck (encoder/decoder widths adapted)."""
    bottleneck, per_latent, extra, _ = BOTTLENECK_CASES[kind]
    cfg = fixture_config()
    cfg["model"]["bottleneck"] = {"type": kind, "config": bottleneck}
    cfg["model"]["encoder"]["config"]["latent_dim"] = 4 * per_latent
    cfg["model"]["decoder"]["config"]["latent_dim"] = 4 + extra
    if not with_discriminator:
        del cfg["training"]["loss_configs"]["discriminator"]
    return cfg


@pytest.mark.parametrize("kind", sorted(BOTTLENECK_CASES))
def test_each_bottleneck_adds_its_upstream_loss_terms_last(kind: str) -> None:
    module = build(bottleneck_config(kind))
    expected = BOTTLENECK_CASES[kind][3]
    assert module.losses_gen.names == ["loss_adv", "feature_matching_loss", "mrstft_loss", *expected]
    weights = {t.name: float(t.weight) for t in module.losses_gen.losses}
    assert weights.get("commitment_loss", 0.25) == pytest.approx(0.25)
    assert weights.get("mmd_loss", 100.0) == pytest.approx(100.0)


@pytest.mark.parametrize("kind", sorted(BOTTLENECK_CASES))
def test_tiny_autoencoder_with_each_bottleneck_trains(kind: str) -> None:
    cfg = bottleneck_config(kind, with_discriminator=False)
    cfg["sample_size"] = 512
    cfg["training"]["optimizer_configs"]["autoencoder"]["optimizer"]["config"]["lr"] = 3e-3
    steps = 12
    module, rows, trainer = fit_one_batch(cfg, steps)
    assert trainer.global_step == steps
    first, last = rows[0]["train/mrstft_loss"], rows[-1]["train/mrstft_loss"]
    assert last < first, (kind, first, last)
    for name in BOTTLENECK_CASES[kind][3]:
        assert torch.isfinite(torch.tensor(rows[-1][f"train/{name}"])), name
    if kind == "rvq":  # codebooks were k-means initialised and moved by EMA, in the EMA copy too
        book = module.autoencoder.bottleneck.quantizer.layers[0]._codebook
        assert book.initted.item() == 1 and rows[-1]["train/quantizer_loss"] > 0
        ema_book = module.autoencoder_ema.ema_model.bottleneck.quantizer.layers[0]._codebook
        assert ema_book.initted.item() == 1 and not torch.equal(ema_book.embed, torch.zeros_like(ema_book.embed))


ENCODER_DECODER_CASES = {
    "dac": ({"in_channels": 1, "latent_dim": 8, "d_model": 4, "strides": [2, 4]},
            {"latent_dim": 4, "out_channels": 1, "channels": 16, "rates": [4, 2]}),
    "seanet": ({"channels": 1, "dimension": 8, "n_filters": 4, "ratios": [2, 4], "lstm": 1},
               {"channels": 1, "dimension": 4, "n_filters": 4, "ratios": [4, 2], "lstm": 1}),
}


@pytest.mark.parametrize("kind", sorted(ENCODER_DECODER_CASES))
def test_tiny_dac_and_seanet_autoencoders_train(kind: str) -> None:
    encoder, decoder = ENCODER_DECODER_CASES[kind]
    cfg = fixture_config()
    cfg["model"]["encoder"] = {"type": kind, "config": encoder}
    cfg["model"]["decoder"] = {"type": kind, "config": decoder}
    del cfg["training"]["loss_configs"]["discriminator"]
    cfg["sample_size"] = 512
    cfg["training"]["optimizer_configs"]["autoencoder"]["optimizer"]["config"]["lr"] = 3e-3
    module, rows, trainer = fit_one_batch(cfg, 12)
    assert trainer.global_step == 12
    assert rows[-1]["train/mrstft_loss"] < rows[0]["train/mrstft_loss"]
    assert module.losses_gen.names == ["mrstft_loss", "kl_loss"]


@pytest.mark.parametrize(
    ("disc_type", "disc_config"),
    [("oobleck", {}), ("dac", {"periods": [2, 3], "fft_sizes": [128]}),
     ("dac", {"periods": [5], "rates": [2], "fft_sizes": [64], "use_hinge": True}),
     ("big_vgan", {"periods": [2], "cqtd_filters": 4, "cqtd_dilations": [1], "cqtd_hop_lengths": [32],
                   "cqtd_n_octaves": [3], "cqtd_bins_per_octaves": [12]}),
     ("transformer", {"patched_kwargs": {"patch_sizes": [8], "depths": [1], "strides": [2],
                                         "sliding_window_widths": [2]},
                      "stft_kwargs": {"enabled": True, "n_ffts": [32], "depths": [1], "strides": [2],
                                      "sliding_window_widths": [1]}}),
     ("hil", {"filters": 4, "n_ffts": [64], "hop_lengths": [16], "win_lengths": [64], "periods": [1, 2], "taps": 16,
              "channels": [4, 8], "strides": [2, 1], "kernel_sizes": [3, 3], "loss_type": "hinge"})],
)
def test_each_discriminator_type_trains_a_tiny_autoencoder(disc_type, disc_config):
    cfg = fixture_config()
    cfg["training"]["loss_configs"]["discriminator"].update(type=disc_type, config=disc_config)
    pl.seed_everything(0, workers=True)
    initial = copy.deepcopy(build(cfg).discriminator.state_dict())
    module, rows, trainer = fit_one_batch(cfg, steps=4)
    assert trainer.global_step == 4
    # the same seed rebuilds the same initial critic, so any difference is training
    trained = module.discriminator.state_dict()
    assert sorted(trained) == sorted(initial)
    assert any(not torch.equal(trained[k], initial[k]) for k in initial if k.endswith(("weight_v", "original1")))
    if disc_type == "transformer":  # zero-initialised attention outputs moved: only gradients can do that
        assert any(trained[k].abs().sum() > 0 for k in trained if k.endswith("self_attn.to_out.weight"))
    last = rows[-1]
    for key in ("train/loss", "train/loss_adv", "train/feature_matching_loss", "train/discriminator_loss"):
        assert math.isfinite(last[key]), (key, last[key])
    assert last["train/feature_matching_loss"] > 0.0
