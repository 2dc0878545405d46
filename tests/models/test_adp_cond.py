"""ADP U-Nets as ``diffusion_cond`` backbones (``adp_cfg_1d``, ``adp_1d``): guidance semantics, global
features, config validation. (Numerical parity with 0.0.20: tests/parity/test_unet_cases.py.)"""

from __future__ import annotations

import copy

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.adp_cond import UNet1DCondWrapper, UNetCFG1DWrapper
from stable_audio_ops.models.diffusion_factory import build_diffusion_cond

UNET = {"in_channels": 1, "channels": 8, "multipliers": [1, 2, 4], "factors": [2, 2], "num_blocks": [1, 1],
        "attentions": [0, 0, 1], "attention_heads": 2, "attention_multiplier": 2, "resnet_groups": 4}
CONDITIONING = {"cond_dim": 16, "configs": [
    {"id": "seconds_start", "type": "number", "config": {"min_val": 0, "max_val": 10}},
    {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 10}}]}
CFG_CONFIG = {"model_type": "diffusion_cond", "sample_size": 32, "sample_rate": 16000, "model": {
    "io_channels": 1, "conditioning": CONDITIONING,
    "diffusion": {"type": "adp_cfg_1d", "cross_attention_cond_ids": ["seconds_start", "seconds_total"],
                  "global_cond_ids": ["seconds_total"],
                  "config": {**UNET, "context_embedding_features": 16, "context_embedding_max_length": 2,
                             "context_features": 16}}}}
METADATA = [{"seconds_start": 1, "seconds_total": 5}, {"seconds_start": 3, "seconds_total": 9}]


def _build(config: dict):
    return build_diffusion_cond(ConfigNode(config, "model.json"))


def _randomized(config: dict):
    """Fresh ADP output layers are small; perturb every weight so all paths (null embedding too) count."""
    torch.manual_seed(0)
    model = _build(config).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


def _inputs(model):
    with torch.no_grad():
        return model.get_conditioning_inputs(model.conditioner(METADATA, "cpu"))


def test_cfg_backbone_guides_towards_the_condition_against_the_learned_null() -> None:
    model = _randomized(CFG_CONFIG)
    assert isinstance(model.model, UNetCFG1DWrapper) and model.min_input_length == 4
    assert "model.model.fixed_embedding.embedding.weight" in model.state_dict()
    inputs, x, t = _inputs(model), torch.randn(2, 1, 32), torch.tensor([0.3, 0.8])
    unet = model.model.model
    null = unet.fixed_embedding(inputs["cross_attn_cond"])
    with torch.no_grad():
        cond = model.model(x, t, **inputs)
        uncond = unet(x, t, embedding=null, embedding_mask=inputs["cross_attn_mask"], features=inputs["global_cond"])
        batched = model.model(x, t, **inputs, cfg_scale=3.0, batch_cfg=True)
        sequential = model.model(x, t, **inputs, cfg_scale=3.0, batch_cfg=False)
        dropped = model.model(x, t, **inputs, cfg_dropout_prob=1.0)
    torch.testing.assert_close(batched, uncond + 3.0 * (cond - uncond), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sequential, batched, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dropped, uncond)  # CFG dropout uses the learned null, not zeros


def test_negative_condition_replaces_the_null_where_its_mask_is_set() -> None:
    model = _randomized(CFG_CONFIG)
    inputs, x, t = _inputs(model), torch.randn(2, 1, 32), torch.tensor([0.5, 0.5])
    negative = torch.randn_like(inputs["cross_attn_cond"])
    all_masked = torch.zeros(2, 2)
    with torch.no_grad():
        plain = model.model(x, t, **inputs, cfg_scale=2.0, batch_cfg=True)
        masked_out = model.model(x, t, **inputs, cfg_scale=2.0, batch_cfg=True, negative_cross_attn_cond=negative,
                                 negative_cross_attn_mask=all_masked)
        used = model.model(x, t, **inputs, cfg_scale=2.0, batch_cfg=True, negative_cross_attn_cond=negative)
    torch.testing.assert_close(masked_out, plain)
    assert (used - plain).abs().max() > 1e-4


def test_wrapper_rejects_unknown_arguments_but_accepts_dit_guidance_options() -> None:
    model = _randomized(CFG_CONFIG)
    inputs, x, t = _inputs(model), torch.randn(1, 1, 32), torch.tensor([0.5])
    inputs = {k: v[:1] if v is not None else None for k, v in inputs.items()}
    with torch.no_grad():
        model.model(x, t, **inputs, apg_scale=1.0, cfg_interval=(0, 1), modular_local_cond=None)
        with pytest.raises(TypeError, match="unexpected argument 'bogus'"):
            model.model(x, t, **inputs, bogus=1)


def test_adp_1d_under_diffusion_cond_uses_global_features_and_input_concat() -> None:
    config = copy.deepcopy(CFG_CONFIG)
    config["model"]["diffusion"] = {"type": "adp_1d", "global_cond_ids": ["seconds_total"],
                                    "config": {**UNET, "context_features": 16}}
    model = _randomized(config)
    assert isinstance(model.model, UNet1DCondWrapper) and "model.model.to_features.0.weight" in model.state_dict()
    inputs, x, t = _inputs(model), torch.randn(2, 1, 32), torch.tensor([0.5, 0.5])
    with torch.no_grad():
        out = model.model(x, t, **inputs)
        swapped = model.model(x, t, **{**inputs, "global_cond": inputs["global_cond"].flip(0)})
    assert out.shape == x.shape and (out - swapped).abs().max() > 1e-4


@pytest.mark.parametrize(("path", "value", "pattern"), [
    (("config", "context_embedding_max_length"), None, r"config\.context_embedding_max_length: is required"),
    (("config", "context_embedding_features"), 32, r"context_embedding_features: is 32 but conditioner"),
    (("config", "context_features"), 8, r"context_features: is 8 but the global conditioners"),
    (("global_cond_ids",), [], r"context_features: must be set exactly when"),
    (("config", "in_channels"), 2, r"config\.in_channels: is 2 but model\.io_channels is 1"),
    (("config", "use_xattn_time"), True, r"config\.use_xattn_time: .* not supported"),
])
def test_cfg_config_errors_name_the_key(path: tuple, value, pattern: str) -> None:
    config = copy.deepcopy(CFG_CONFIG)
    node = config["model"]["diffusion"]
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    with pytest.raises(ConfigError, match=pattern):
        _build(config)


def test_adp_1d_rejects_cross_attention_conditioning() -> None:
    config = copy.deepcopy(CFG_CONFIG)
    config["model"]["diffusion"] = {"type": "adp_1d", "cross_attention_cond_ids": ["seconds_start"],
                                    "config": dict(UNET)}
    with pytest.raises(ConfigError, match=r"cross_attention_cond_ids: adp_1d has no cross-attention"):
        _build(config)
    config["model"]["diffusion"]["config"]["context_embedding_features"] = 16
    with pytest.raises(ConfigError, match=r"config\.context_embedding_features: .* not available"):
        _build(config)
