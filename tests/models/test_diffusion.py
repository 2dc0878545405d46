"""ConditionedDiffusionModelWrapper + DiTWrapper and the diffusion_cond factory (validation, wiring)."""

from __future__ import annotations

import copy

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError, UnknownTypeError
from stable_audio_ops.inference.schedules import DistributionShift, LogSNRShift
from stable_audio_ops.models.diffusion import ConditionedDiffusionModelWrapper, DiTWrapper
from stable_audio_ops.models.diffusion_factory import build_diffusion_cond
from tests.parity.harness import load_case

CONFIG = {
    "model_type": "diffusion_cond",
    "sample_size": 64,
    "sample_rate": 16000,
    "audio_channels": 1,
    "model": {
        "io_channels": 4,
        "conditioning": {
            "cond_dim": 32,
            "configs": [
                {"id": "seconds_start", "type": "number", "config": {"min_val": 0, "max_val": 512}},
                {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 512}},
                {"id": "genre", "type": "list", "config": {"options": ["a", "b"]}},
            ],
        },
        "diffusion": {
            "type": "dit",
            "cross_attention_cond_ids": ["genre", "seconds_total"],
            "global_cond_ids": ["seconds_start", "seconds_total"],
            "config": {"io_channels": 4, "embed_dim": 64, "depth": 1, "num_heads": 2, "cond_token_dim": 32,
                       "global_cond_dim": 64, "project_cond_tokens": False},
        },
    },
}
METADATA = [{"seconds_start": 0, "seconds_total": 10, "genre": "a"}, {"seconds_start": 5, "seconds_total": 30,
                                                                      "genre": "b"}]


def _build(config: dict) -> ConditionedDiffusionModelWrapper:
    return build_diffusion_cond(ConfigNode(config, "model.json"))


def _variant(path: str, value) -> dict:
    config = copy.deepcopy(CONFIG)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


def test_factory_builds_the_wrapper_with_upstream_key_prefixes() -> None:
    model = _build(CONFIG)
    assert isinstance(model.model, DiTWrapper) and model.diffusion_objective == "v"
    assert model.min_input_length == 1 and model.pretransform is None and model.io_channels == 4
    keys = set(model.state_dict())
    assert "model.model.transformer.layers.0.cross_attn.to_kv.weight" in keys
    assert "conditioner.conditioners.genre.embedder.weight" in keys
    assert isinstance(model.sampling_dist_shift, LogSNRShift) and model.sampling_dist_shift.rate == 0
    assert model.dist_shift is None


def test_latent_model_min_input_length_and_configured_shifts() -> None:
    config = load_case("dit_latent_v").model_config
    config["model"]["diffusion"]["config"]["patch_size"] = 2
    config["model"]["diffusion"]["distribution_shift_options"] = {"base_shift": 0.5}
    config["model"]["diffusion"]["sampling_distribution_shift_options"] = {"type": "logsnr", "rate": 0.5}
    model = _build(config)
    assert model.min_input_length == 8 * 2  # pretransform ratio x patch size
    assert model.pretransform is not None and "pretransform.model.decoder.layers.0.weight_g" in model.state_dict()
    assert isinstance(model.dist_shift, DistributionShift)
    assert isinstance(model.sampling_dist_shift, LogSNRShift) and model.sampling_dist_shift.rate == 0.5


@pytest.mark.parametrize(("path", "value", "error", "pattern"), [
    ("model.diffusion.type", "DAU1d", UnknownTypeError,
     r"model\.diffusion\.type: 'DAU1d'.*supported: adp_1d, adp_cfg_1d, dit"),
    ("model.diffusion.type", "unet9", UnknownTypeError,
     r"unknown diffusion backbone type 'unet9'; known: adp_1d, adp_cfg_1d, dit"),
    ("model.diffusion.diffusion_objective", "eps", UnknownTypeError,
     r"diffusion_objective: unknown value 'eps'; known: v, rectified_flow, rf_denoiser"),
    ("model.diffusion.config.cond_token_dim", 64, ConfigError,
     r"config\.cond_token_dim: is 64 but conditioner 'genre' outputs 32-dim tokens"),
    ("model.diffusion.config.global_cond_dim", 32, ConfigError, r"global_cond_dim: is 32 but the global"),
    ("model.diffusion.cross_attention_cond_ids", ["genre", "prompt"], ConfigError,
     r"cross_attention_cond_ids\[1\]: 'prompt' is not a configured conditioner id"),
    ("model.diffusion.config.num_heads", 4, ConfigError, r"head dim is embed_dim / num_heads = 16"),
    ("model.diffusion.config.depht", 2, ConfigError, r"config\.depht: unknown key"),
    ("model.diffusion.config.conformer", "yes", ConfigError, r"config\.conformer: expected a bool"),
    ("model.diffusion.config.attn_kwargs", {"qk_norm": "cosine"}, ConfigError, r"attn_kwargs\.qk_norm: expected one of"),
    ("model.diffusion.config.io_channels", 8, ConfigError, r"io_channels: is 8 but model\.io_channels is 4"),
    ("model.diffusion.sampling_distribution_shift_options", {"type": "cosine"}, UnknownTypeError,
     r"sampling_distribution_shift_options\.type"),
])
def test_factory_errors_name_file_and_key_path(path, value, error, pattern) -> None:
    with pytest.raises(error, match=pattern) as info:
        _build(_variant(path, value))
    assert str(info.value).startswith("model.json: ")


def test_conditioning_inputs_concatenate_in_configured_order() -> None:
    model = _build(CONFIG).eval()
    with torch.no_grad():
        cond = model.conditioner(METADATA, "cpu")
        inputs = model.get_conditioning_inputs(cond)
    torch.testing.assert_close(inputs["cross_attn_cond"], torch.cat([cond["genre"][0], cond["seconds_total"][0]], 1))
    assert inputs["cross_attn_mask"].shape == (2, 2)
    torch.testing.assert_close(inputs["global_cond"],
                               torch.cat([cond["seconds_start"][0], cond["seconds_total"][0]], -1).squeeze(1))
    assert inputs["input_concat_cond"] is None and inputs["prepend_cond"] is None
    negative = model.get_conditioning_inputs(cond, negative=True)
    assert set(negative) == {"negative_cross_attn_cond", "negative_cross_attn_mask", "negative_global_cond",
                             "negative_input_concat_cond"}


def test_prepend_and_input_concat_ids_with_pre_encoded_tokens() -> None:
    config = copy.deepcopy(CONFIG)
    config["model"]["conditioning"]["pre_encoded_keys"] = ["genre"]
    config["model"]["diffusion"].update({"prepend_cond_ids": ["genre"], "input_concat_ids": ["extra"]})
    config["model"]["diffusion"]["config"].update({"prepend_cond_dim": 32, "input_concat_dim": 2})
    model = _build(config).eval()
    tokens = torch.randn(2, 5, 32)
    metadata = [dict(m, genre=tokens[i]) for i, m in enumerate(METADATA)]
    with torch.no_grad():
        cond = model.conditioner(metadata, "cpu")
        cond["extra"] = [torch.randn(2, 2, 16)]
        inputs = model.get_conditioning_inputs(cond)
        assert inputs["prepend_cond"].shape == (2, 5, 32)
        torch.testing.assert_close(inputs["prepend_cond_mask"], torch.ones(2, 5))  # pre-encoded: all valid
        x, t = torch.randn(2, 4, 16), torch.tensor([0.2, 0.6])
        out = model(x, t, cond, cfg_scale=3.0)
        assert out.shape == x.shape


def test_wrapper_forward_equals_backbone_call_and_accepts_contract_names() -> None:
    model = _build(CONFIG).eval()
    x, t = torch.randn(2, 4, 16), torch.tensor([0.3, 0.8])
    with torch.no_grad():
        cond = model.conditioner(METADATA, "cpu")
        inputs = model.get_conditioning_inputs(cond)
        a = model(x, t, cond, cfg_scale=4.0)
        b = model.model(x, t, **inputs, cfg_scale=4.0)
        c = model.model(x, t, cross_attn_cond=inputs["cross_attn_cond"], cross_attn_cond_mask=inputs["cross_attn_mask"],
                        global_embed=inputs["global_cond"], cfg_scale=4.0)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    with pytest.raises(TypeError, match="unexpected argument 'cfg_scael'"):
        model.model(x, t, **inputs, cfg_scael=4.0)
    with pytest.raises(ValueError, match="batch CFG"):
        model.model(x, t, **inputs, batch_cfg=False)
