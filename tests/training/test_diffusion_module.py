"""DiffusionCondTrainingModule: upstream's wrapped state-dict layout, learning on a repeated batch, options."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from stable_audio_ops.errors import ConfigError, UnknownTypeError
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.diffusion import DiffusionCondTrainingModule, padding_masks_from_metadata
from stable_audio_ops.training.factory import create_training_module_from_config
from stable_audio_ops.training.timesteps import noise_and_target

CONFIG = json.loads((Path(__file__).parents[1] / "fixtures" / "configs" / "dit_tiny.json").read_text())


def _module(config: dict | None = None) -> DiffusionCondTrainingModule:
    config = copy.deepcopy(config or CONFIG)
    torch.manual_seed(0)
    return create_training_module_from_config(config, create_model_from_config(config))


def _batch(n: int = 4) -> tuple[torch.Tensor, tuple[dict, ...]]:
    t = torch.arange(512) / 16000
    freqs = [440.0, 660.0, 880.0, 330.0]
    audio = torch.stack([0.5 * torch.sin(2 * torch.pi * freqs[i % 4] * t)[None] for i in range(n)])
    prompts = ["flute", "organ", "piano", "flute"]
    meta = tuple({"prompt": prompts[i % 4], "seconds_total": 0.03, "padding_mask": torch.ones(512)} for i in range(n))
    return audio, meta


def test_state_dict_layout_is_upstreams_wrapper() -> None:
    keys = set(_module().state_dict())
    assert "losses.losses.0.weight" in keys
    assert {"diffusion_ema.initted", "diffusion_ema.step"} <= keys
    assert "diffusion.model.model.transformer.layers.0.self_attn.to_qkv.weight" in keys
    assert "diffusion_ema.ema_model.model.transformer.layers.0.self_attn.to_qkv.weight" in keys
    assert "diffusion.conditioner.conditioners.seconds_total.embedder.embedding.0.weights" in keys
    assert "diffusion.pretransform.model.encoder.layers.0.weight_v" in keys
    # no duplicated online model inside the EMA (include_online_model=False)
    assert not any(k.startswith("diffusion_ema.online_model.") for k in keys)
    backbone = {k.removeprefix("diffusion.model.") for k in keys if k.startswith("diffusion.model.")}
    ema = {k.removeprefix("diffusion_ema.ema_model.") for k in keys if k.startswith("diffusion_ema.ema_model.")}
    assert backbone == ema
    # a wrapped state dict loads strictly into a fresh module
    module = _module()
    fresh = _module()
    fresh.load_state_dict(module.state_dict(), strict=True)


def _fixed_loss(module: DiffusionCondTrainingModule, batch) -> float:
    """MSE at fixed noise levels with fixed noise (an evaluation that does not depend on the sampler)."""
    audio, meta = batch
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        module.eval()
        cond = module.diffusion.conditioner(list(meta), "cpu")
        x = module.diffusion.pretransform.model.encode(audio, noise=torch.zeros(audio.shape[0], 4, 64))
        total = 0.0
        for value in (0.2, 0.5, 0.8):
            t = torch.full((x.shape[0],), value)
            noised, target = noise_and_target(x, t, "v", noise=torch.randn(x.shape, generator=gen))
            total += torch.mean((module.diffusion(noised, t, cond=cond) - target) ** 2).item()
        module.train()
    return total / 3


def _fit(module: DiffusionCondTrainingModule, batch, steps: int, callbacks=()) -> pl.Trainer:
    """Train ``steps`` steps on the same batch (no logger, checkpoints or progress bar)."""
    loader = torch.utils.data.DataLoader([0] * steps, batch_size=1, collate_fn=lambda _: batch)
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", callbacks=list(callbacks))
    trainer.fit(module, loader)
    return trainer


def test_loss_falls_on_one_repeated_batch_and_ema_follows() -> None:
    module = _module()
    batch = _batch()
    before = _fixed_loss(module, batch)
    ema_before = module.diffusion_ema.ema_model.model.postprocess_conv.weight.clone()
    trainer = _fit(module, batch, steps=60)
    after = _fixed_loss(module, batch)
    assert after < 0.7 * before, (before, after)
    assert int(module.diffusion_ema.step) == 60
    assert not torch.equal(module.diffusion_ema.ema_model.model.postprocess_conv.weight, ema_before)
    # the frozen pretransform did not move
    fresh = _module()
    for (name, p), q in zip(module.diffusion.pretransform.named_parameters(),
                            fresh.diffusion.pretransform.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert "train/loss" in trainer.callback_metrics and "train/std_data" in trainer.callback_metrics


class _Backbones(pl.Callback):
    """The online and EMA backbone weights after every batch (cloned)."""

    def __init__(self):
        self.online: list[dict[str, torch.Tensor]] = []
        self.ema: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.online.append({k: v.detach().clone() for k, v in pl_module.diffusion.model.state_dict().items()})
        ema = pl_module.diffusion_ema.ema_model
        self.ema.append({k: v.detach().clone() for k, v in ema.state_dict().items()})


def test_ema_settings_and_cadence_follow_0_0_20() -> None:
    module = _module()
    ema = module.diffusion_ema
    assert (ema.beta, ema.power, ema.update_every, ema.update_after_step) == (0.999, 0.75, 1, 1)
    assert not ema.include_online_model
    # the warm-up caps at 0.999 (0.0.19: 0.9999) from the 10,001st update on: bit-identical to 0.0.19 before that
    ema.step.fill_(10_000)
    assert ema.get_current_decay() < 0.999
    ema.step.fill_(10_001)
    assert ema.get_current_decay() == 0.999
    ema.step.fill_(0)

    initial = {k: v.detach().clone() for k, v in module.diffusion.model.state_dict().items()}
    seen = _Backbones()
    _fit(module, _batch(), steps=4, callbacks=[seen])
    # one update per optimizer step, before the step: the first three copy the weights the step started from
    # (update_after_step 1, then the initial copy of the first real update) ...
    for ema_after, online_before in zip(seen.ema[:3], [initial, *seen.online[:2]], strict=True):
        assert all(torch.equal(ema_after[k], online_before[k]) for k in online_before)
    key = "model.postprocess_conv.weight"
    assert not torch.equal(seen.ema[2][key], seen.online[2][key])  # it lags one step behind
    # ... the fourth averages with the warm-up decay 1 - 3 ** -0.75
    weight = 3 ** -0.75
    for key, value in seen.ema[3].items():
        torch.testing.assert_close(value, torch.lerp(seen.ema[2][key], seen.online[2][key], weight))
    assert int(ema.step) == 4


def test_pre_encoded_latents_skip_the_pretransform_and_are_divided_by_its_scale() -> None:
    config = copy.deepcopy(CONFIG)
    config["model"]["pretransform"]["scale"] = 2.0
    config["training"]["pre_encoded"] = True
    module = _module(config)
    latents = torch.randn(2, 4, 16)
    meta = ({"padding_mask": [torch.tensor([1.0] * 10 + [0.0] * 6)]}, {"padding_mask": [torch.ones(16)]})
    x, masks = module.diffusion_input(latents, meta)
    assert torch.allclose(x, latents / 2.0)
    assert masks.shape == (2, 16) and masks[0].sum() == 10 and masks[1].all()


def test_audio_rate_padding_masks_are_resampled_to_the_latent_length() -> None:
    module = _module()
    audio, _ = _batch(2)
    meta = ({"padding_mask": torch.cat([torch.ones(256), torch.zeros(256)])}, {"padding_mask": torch.ones(512)})
    x, masks = module.diffusion_input(audio, meta)
    assert x.shape == (2, 4, 64)
    assert masks[0].sum() == 32 and masks[1].sum() == 64
    assert padding_masks_from_metadata([{}], 5, "cpu").all()


def test_inpaint_model_type_trains_with_masks_in_the_conditioning() -> None:
    config = copy.deepcopy(CONFIG)
    config["model_type"] = "diffusion_cond_inpaint"
    config["model"]["diffusion"]["input_concat_ids"] = ["inpaint_mask", "inpaint_masked_input"]
    config["model"]["diffusion"]["config"]["input_concat_dim"] = 5
    config["training"]["inpainting"] = {"mask_kwargs": {"mask_type_probabilities": [0.0, 0.0, 1.0]}}
    module = _module(config)
    assert module.inpaint_mask_kwargs == {"mask_type_probabilities": [0.0, 0.0, 1.0]}
    cond: dict = {}
    x = torch.randn(3, 4, 20)
    module.add_inpainting(cond, x, torch.ones(3, 20, dtype=torch.bool))
    mask = cond["inpaint_mask"][0]
    assert mask.shape == (3, 1, 20)
    assert torch.equal(cond["inpaint_masked_input"][0], x * mask)
    loader = torch.utils.data.DataLoader([0] * 2, batch_size=1, collate_fn=lambda _: _batch(2))
    pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, accelerator="cpu").fit(module, loader)


def test_training_config_errors_name_the_key() -> None:
    config = copy.deepcopy(CONFIG)
    del config["training"]["optimizer_configs"]
    with pytest.raises(ConfigError, match="training.learning_rate"):
        _module(config)
    config["training"]["learning_rate"] = 1e-4
    config["training"]["timestep_sampler"] = "cosine"
    with pytest.raises(UnknownTypeError, match="training.timestep_sampler.*known: uniform, logit_normal, trunc_logit_normal, log_snr"):
        _module(config)
    config["training"]["timestep_sampler"] = "uniform"
    config["training"]["inpainting"] = {"mask_kwargs": {"max_segments": 3}}
    with pytest.raises(ConfigError, match="training.inpainting.mask_kwargs.max_segments"):
        _module(config)


def test_learning_rate_alone_gives_adam_and_a_scheduler_is_stepped_per_step() -> None:
    config = copy.deepcopy(CONFIG)
    del config["training"]["optimizer_configs"]
    config["training"]["learning_rate"] = 5e-4
    module = _module(config)
    optimizers = module.configure_optimizers()
    assert type(optimizers[0]).__name__ == "Adam" and optimizers[0].param_groups[0]["lr"] == 5e-4
    config = copy.deepcopy(CONFIG)
    config["training"]["optimizer_configs"]["diffusion"]["scheduler"] = {
        "type": "InverseLR", "config": {"inv_gamma": 100, "power": 0.5, "warmup": 0.9}}
    (opts, scheds) = _module(config).configure_optimizers()
    assert scheds[0]["interval"] == "step" and type(scheds[0]["scheduler"]).__name__ == "InverseLR"


def test_export_state_dict_swaps_in_the_ema_backbone() -> None:
    module = _module()
    with torch.no_grad():
        module.diffusion.model.model.postprocess_conv.weight.fill_(0.5)
    exported = module.export_state_dict()
    assert set(exported) == set(module.diffusion.state_dict())
    assert torch.equal(exported["model.model.postprocess_conv.weight"],
                       module.diffusion_ema.ema_model.model.postprocess_conv.weight)
    assert not torch.equal(exported["model.model.postprocess_conv.weight"],
                           module.diffusion.model.model.postprocess_conv.weight)


ADP_CFG = {"type": "adp_cfg_1d", "cross_attention_cond_ids": ["prompt", "seconds_total"],
           "global_cond_ids": ["seconds_total"],
           "config": {"in_channels": 4, "channels": 16, "multipliers": [1, 2, 2], "factors": [2, 2], "num_blocks": [1, 1],
                      "attentions": [0, 1, 1], "attention_heads": 2, "attention_multiplier": 2, "resnet_groups": 4,
                      "context_embedding_features": 32, "context_embedding_max_length": 2, "context_features": 32}}


def test_adp_cfg_backbone_trains_with_cfg_dropout_and_its_loss_falls() -> None:
    """The ADP U-Net with cross-attention (``adp_cfg_1d``) trains through the same module as the DiT:
    CFG dropout swaps in the learned null condition, and the loss on a repeated batch falls."""
    config = copy.deepcopy(CONFIG)
    config["model"]["diffusion"] = copy.deepcopy(ADP_CFG)
    module = _module(config)
    assert "diffusion_ema.ema_model.model.fixed_embedding.embedding.weight" in module.state_dict()
    batch = _batch()
    before = _fixed_loss(module, batch)
    null_before = module.diffusion.model.model.fixed_embedding.embedding.weight.clone()
    _fit(module, batch, steps=40)
    after = _fixed_loss(module, batch)
    assert after < 0.7 * before, (before, after)
    assert not torch.equal(module.diffusion.model.model.fixed_embedding.embedding.weight, null_before)
