"""0.0.20's autoencoder training keys: decoder_finetune, num_synthetic_chirps, eval_loss_configs, decoder_loss,
latent_mask_ratio, force_input_mono and encoder_freeze_on_warmup each change what they should."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from stable_audio_ops.errors import ConfigError
from tests.training.autoencoder_fixtures import build, fit, snapshot, tiny_config, tones


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str) -> list[str]:
    return [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]


class Inputs:
    """Records the input shapes (and the last input) of a submodule through a forward pre-hook."""

    def __init__(self, module: torch.nn.Module):
        self.shapes: list[tuple[int, ...]] = []
        self.last: torch.Tensor | None = None
        module.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.shapes.append(tuple(args[0].shape))
        self.last = args[0].detach()


def validate(module: pl.LightningModule, audio: torch.Tensor) -> dict[str, float]:
    """One validation pass over the batch ``audio``; the logged epoch metrics."""
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (metrics,) = trainer.validate(module, torch.utils.data.DataLoader([(audio, ({}, {}))], batch_size=None),
                                  verbose=False)
    return metrics


def test_decoder_finetune_trains_the_decoder_and_leaves_the_encoder_untouched():
    config = tiny_config(discriminator=True)
    config["training"]["decoder_finetune"] = True
    module = build(config)
    assert {id(p) for p in module.generator_parameters()} == {id(p) for p in module.autoencoder.decoder.parameters()}
    before = snapshot(module.autoencoder)
    fit(module, tones(config), steps=4)
    after = module.autoencoder.state_dict()
    assert changed(before, after, "encoder.") == []
    assert changed(before, after, "decoder.")
    assert all(p.grad is None for p in module.autoencoder.encoder.parameters())


def test_gradient_checkpointing_key_switches_the_residual_units():
    from stable_audio_ops.models.oobleck import ResidualUnit

    def flags(module):
        return {m.checkpoint_activations for m in module.autoencoder.modules() if isinstance(m, ResidualUnit)}

    assert flags(build(tiny_config())) == {True}  # upstream's behaviour by default
    config = tiny_config()
    config["training"]["gradient_checkpointing"] = False
    module = build(config)
    assert flags(module) == {False}
    fit(module, tones(config), steps=2)  # trains without recomputation
    config["training"]["gradient_checkpointing"] = "no"
    with pytest.raises(ConfigError, match="gradient_checkpointing"):
        build(config)


def test_encoder_freeze_on_warmup_stops_the_encoder_only_after_warmup():
    config = tiny_config()
    config["training"].update(encoder_freeze_on_warmup=True, warmup_steps=2)
    module = build(config)
    audio = tones(config)
    before = snapshot(module.autoencoder)
    fit(module, audio, steps=2)  # within warm-up: everything trains
    warm = snapshot(module.autoencoder)
    assert changed(before, warm, "encoder.") and changed(before, warm, "decoder.")
    config["training"]["warmup_steps"] = 0  # the same weights, now past warm-up
    module = build(config)
    module.autoencoder.load_state_dict(warm)
    fit(module, audio, steps=3)
    after = module.autoencoder.state_dict()
    assert changed(warm, after, "encoder.") == []
    assert changed(warm, after, "decoder.")


def test_num_synthetic_chirps_adds_sweeps_to_every_training_batch():
    config = tiny_config()
    config["training"]["num_synthetic_chirps"] = 3
    module = build(config)
    seen = Inputs(module.autoencoder.encoder)
    fit(module, tones(config), steps=2)
    assert seen.shapes == [(5, 1, config["sample_size"])] * 2
    low_rate = tiny_config()
    low_rate["sample_rate"] = 200
    low_rate["training"]["num_synthetic_chirps"] = 1
    with pytest.raises(ConfigError, match="training.num_synthetic_chirps: synthetic chirps need a sample rate"):
        build(low_rate)


def test_latent_mask_ratio_masks_in_training_not_in_validation():
    config = tiny_config()
    config["training"]["latent_mask_ratio"] = 1.0
    module = build(config)
    decoder_in = Inputs(module.autoencoder.decoder)
    fit(module, tones(config), steps=1)
    assert torch.count_nonzero(decoder_in.last) == 0  # every latent zeroed before decoding
    validate(module, tones(config))
    assert torch.count_nonzero(decoder_in.last) > 0


def test_force_input_mono_encodes_mono_and_compares_with_the_stereo_input():
    config = tiny_config()
    config["audio_channels"] = 2
    config["model"]["io_channels"] = 2
    config["model"]["encoder"]["config"]["in_channels"] = 1
    config["model"]["decoder"]["config"]["out_channels"] = 2
    config["training"]["force_input_mono"] = True
    module = build(config)
    module.autoencoder.in_channels = 1
    seen = Inputs(module.autoencoder.encoder)
    stereo = tones(config, channels=2)
    stereo[:, 1] *= 0.5
    rows = fit(module, stereo, steps=1)
    assert seen.shapes[0][1] == 1
    assert torch.allclose(seen.last, stereo.mean(dim=1, keepdim=True))
    assert "train/lr_stft_loss" in rows[-1]  # the losses see both channels (0.0.20's stereo term)


def test_eval_loss_configs_are_logged_as_val_metrics():
    config = tiny_config()
    config["training"]["eval_loss_configs"] = {
        "stft": {"fft_size": 256, "hop_size": 64},
        "sisdr": {},
        "mel": {"fft_size": 256, "hop_size": 64, "n_mels": 32},
    }
    module = build(config)
    metrics = validate(module, tones(config))
    assert {"val/stft", "val/sisdr", "val/mel", "val/mrstft_loss"} <= set(metrics)
    assert metrics["val/stft"] > 0 and metrics["val/mel"] > 0
    # an untrained model reconstructs badly: SI-SDR (logged in dB, higher is better) is low
    assert metrics["val/sisdr"] < 10.0
    perfect = module.eval_losses["sisdr"](tones(config), tones(config))
    assert -perfect > 60.0  # the module returns the negative, as auraloss


@pytest.mark.parametrize(("eval_config", "message"), [
    ({"pesq": {}}, r"training\.eval_loss_configs\.pesq: PESQ needs the pypesq package"),
    ({"snr": {}}, r"eval_loss_configs\.snr: unknown validation metric 'snr'; known: stft, sisdr, mel"),
    ({"mel": {"n_mels": 4096}}, r"eval_loss_configs\.mel: bad mel metric config"),
])
def test_bad_eval_loss_configs_name_the_key(eval_config, message):
    config = tiny_config()
    config["training"]["eval_loss_configs"] = eval_config
    with pytest.raises(ConfigError, match=message):
        build(config)


def test_decoder_loss_is_refused_with_the_reason():
    config = tiny_config()
    config["training"]["decoder_loss"] = False
    build(config)
    config["training"]["decoder_loss"] = True
    with pytest.raises(ConfigError, match=r"m\.json: training\.decoder_loss: .*no decoder type"):
        build(config, source="m.json")


@pytest.mark.parametrize(("where", "key", "value"), [
    ("training", "stride_curriculum", [1.0, 0.5]),
    ("training", "tail_masking_max_patches", 2),
    ("loss_configs", "mrmel", {"weights": {"mrmel": 1.0}, "config": {}}),
    ("loss_configs", "jepa", {"weights": {"jepa": 1.0}, "config": {}}),
])
def test_training_keys_that_are_not_implemented_are_refused_not_ignored(where, key, value):
    config = tiny_config()
    block = config["training"] if where == "training" else config["training"]["loss_configs"]
    block[key] = value
    path = "training" if where == "training" else "training.loss_configs"
    with pytest.raises(ConfigError, match=rf"{path}\.{key}: not supported"):
        build(config)
    config["training"]["log_every_n_steps"] = 5  # logging only: accepted
    del block[key]
    build(config)
