"""DiT options of stable-audio-tools 0.0.20 without parity fixtures: 0.0.20's state-dict keys, and each option
really acting on the output (a model with the option, sharing every other weight with a plain model, must
compute something else), plus the sliding window's receptive field and config errors naming the key."""

from __future__ import annotations

import copy
import json
import warnings
from typing import Any

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models import transformer as transformer_module
from stable_audio_ops.models.diffusion_factory import dit_kwargs_from_config
from stable_audio_ops.models.dit import DiffusionTransformer
from stable_audio_ops.models.factory import create_model_from_config
from tests.parity.harness import FIXTURES

BASE: dict[str, Any] = {"io_channels": 4, "embed_dim": 64, "depth": 2, "num_heads": 2, "cond_token_dim": 32,
                        "global_cond_dim": 16}
L0 = "transformer.layers.0."


def _build(config: dict[str, Any], seed: int = 0) -> DiffusionTransformer:
    """A DiT from a 0.0.20-style ``config`` block (through the factory's validation), weights moved off the
    zero init so every branch contributes."""
    torch.manual_seed(seed)
    model = DiffusionTransformer(**dit_kwargs_from_config(ConfigNode({**BASE, **config}, "test.json", "config")))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def _inputs(frames: int = 12) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(42)
    return {"x": torch.randn(2, 4, frames, generator=gen), "t": torch.tensor([0.3, 0.7]),
            "cross_attn_cond": torch.randn(2, 3, 32, generator=gen), "global_embed": torch.randn(2, 16, generator=gen)}


def _output_with_and_without(config: dict[str, Any], plain: dict[str, Any] | None = None):
    """Outputs of a plain DiT and of one with ``config`` that shares every weight both have."""
    base = _build(plain or {})
    model = _build(config, seed=1)
    own = model.state_dict()
    shared = {k: v for k, v in base.state_dict().items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(shared, strict=False)
    with torch.no_grad():
        return base(**_inputs()), model(**_inputs())


# option -> (config, keys 0.0.20 has for it, keys it must not have); names from 0.0.20's module structure
CASES: dict[str, tuple[dict[str, Any], dict[str, tuple[int, ...]], tuple[str, ...]]] = {
    "adaLN": ({"global_cond_type": "adaLN"},
              {"transformer.global_cond_embedder.0.weight": (64, 64), "transformer.global_cond_embedder.2.weight":
               (384, 64), L0 + "to_scale_shift_gate": (384,)}, ()),
    "timestep_input_concat": ({"timestep_cond_type": "input_concat", "timestep_embed_dim": 8},
                              {"to_timestep_embed.0.weight": (8, 256), "preprocess_conv.weight": (12, 12, 1),
                               "transformer.project_in.weight": (64, 12)}, ()),
    "memory_tokens": ({"num_memory_tokens": 3}, {"transformer.memory_tokens": (3, 64)}, ()),
    "conformer": ({"conformer": True},
                  {L0 + "conformer.in_norm.gamma": (64,), L0 + "conformer.in_norm.beta": (64,),
                   L0 + "conformer.pointwise_conv.weight": (64, 64, 1), L0 + "conformer.glu.proj.weight": (128, 64),
                   L0 + "conformer.depthwise_conv.weight": (64, 1, 17), L0 + "conformer.mid_norm.gamma": (64,),
                   L0 + "conformer.pointwise_conv_2.weight": (64, 64, 1)}, (L0 + "conformer_scale.scale",)),
    "layer_scale": ({"layer_scale": True, "conformer": True},
                    {L0 + "self_attn_scale.scale": (64,), L0 + "cross_attn_scale.scale": (64,),
                     L0 + "ff_scale.scale": (64,), L0 + "conformer_scale.scale": (64,)}, ()),
    "dyt_norms": ({"norm_type": "dyt", "conformer": True},
                  {L0 + "pre_norm.alpha": (1,), L0 + "pre_norm.gamma": (64,), L0 + "pre_norm.beta": (64,),
                   L0 + "cross_attend_norm.alpha": (1,), L0 + "ff_norm.alpha": (1,),
                   L0 + "conformer.in_norm.gamma": (64,)}, (L0 + "conformer.in_norm.alpha",)),
    "remove_norms": ({"remove_norms": True}, {L0 + "pre_norm.alpha": (1,), L0 + "ff_norm.beta": (64,)}, ()),
    "rms_norms": ({"norm_type": "rms_norm"}, {L0 + "pre_norm.gamma": (64,), L0 + "ff_norm.gamma": (64,)},
                  (L0 + "pre_norm.beta", L0 + "ff_norm.beta")),
    "differential": ({"attn_kwargs": {"differential": True}},
                     {L0 + "self_attn.to_qkv.weight": (320, 64), L0 + "cross_attn.to_q.weight": (128, 64),
                      L0 + "cross_attn.to_kv.weight": (192, 64)}, ()),
    "differential_narrow_context": ({"attn_kwargs": {"differential": True}, "project_cond_tokens": False},
                                    {L0 + "cross_attn.to_q.weight": (128, 64),
                                     L0 + "cross_attn.to_kv.weight": (96, 32)}, ()),
    "feat_scale": ({"attn_kwargs": {"feat_scale": True}},
                   {L0 + "self_attn.lambda_dc": (64,), L0 + "self_attn.lambda_hf": (64,),
                    L0 + "cross_attn.lambda_dc": (64,)}, ()),
    "qk_norm_l2": ({"attn_kwargs": {"qk_norm": "l2"}}, {}, (L0 + "self_attn.q_norm.weight",)),
    "qk_norm_ln": ({"attn_kwargs": {"qk_norm": "ln"}},
                   {L0 + "self_attn.q_norm.weight": (32,), L0 + "self_attn.q_norm.bias": (32,),
                    L0 + "cross_attn.k_norm.weight": (32,)}, ()),
    "qk_norm_rms": ({"attn_kwargs": {"qk_norm": "rms"}},
                    {L0 + "self_attn.q_norm.gamma": (32,), L0 + "cross_attn.k_norm.gamma": (32,)}, ()),
    "qk_norm_dyt": ({"attn_kwargs": {"qk_norm": "dyt", "qk_norm_eps": 1e-3}},
                    {L0 + "self_attn.q_norm.alpha": (1,), L0 + "self_attn.k_norm.gamma": (32,),
                     L0 + "cross_attn.q_norm.beta": (32,)}, ()),
    "final_cross_attn_ix": ({"final_cross_attn_ix": 0}, {L0 + "cross_attn.to_kv.weight": (128, 64)},
                            ("transformer.layers.1.cross_attn.to_kv.weight", "transformer.layers.1.cross_attend_norm.gamma")),
    "abs_pos_emb": ({"use_abs_pos_emb": True, "abs_pos_emb_max_length": 50, "num_memory_tokens": 2},
                    {"transformer.pos_emb.emb.weight": (52, 64), "transformer.memory_tokens": (2, 64)}, ()),
    "sinusoidal_pos_emb": ({"use_sinusoidal_emb": True}, {"transformer.pos_emb.scale": (1,)},
                           ("transformer.pos_emb.inv_freq",)),
    "add_rope": ({"add_rope": True, "rotary_pos_emb": False}, {L0 + "rope.inv_freq": (8,)},
                 ("transformer.rotary_pos_emb.inv_freq",)),
    "sliding_window": ({"sliding_window": [1, 1]}, {}, ()),
}


@pytest.mark.parametrize("name", CASES)
def test_option_has_upstream_keys_and_changes_the_output(name: str) -> None:
    config, keys, absent = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the sliding-window note
        model = _build(config)
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        for key, shape in keys.items():
            assert shapes.get(key) == shape, (key, shapes.get(key))
        for key in absent:
            assert key not in shapes, key
        plain = {"rotary_pos_emb": False} if name == "add_rope" else None
        if name == "differential_narrow_context":
            plain = {"project_cond_tokens": False}
        before, after = _output_with_and_without(config, plain)
    assert after.shape == before.shape == (2, 4, 12)
    assert torch.isfinite(after).all()
    assert (after - before).abs().max() > 1e-4, f"{name} did not change the output"


def test_differential_attention_subtracts_the_second_attention_map() -> None:
    """``attn(q, k, v) - attn(q_diff, k_diff, v)`` with 0.0.20's chunk order of the fused projection."""
    attn = transformer_module.Attention(64, dim_heads=32, differential=True, zero_init_output=False).eval()
    x = torch.randn(2, 5, 64)
    q, k, v, q2, k2 = (t.reshape(2, 5, 2, 32).transpose(1, 2) for t in attn.to_qkv(x).chunk(5, dim=-1))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    manual = (sdpa(q, k, v) - sdpa(q2, k2, v)).transpose(1, 2).reshape(2, 5, 64)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), attn.to_out(manual))


def _reach(model: DiffusionTransformer, frame: int = 6, frames: int = 16) -> set[int]:
    """Output frames that move when one input frame changes."""
    x = torch.randn(1, 4, frames, generator=torch.Generator().manual_seed(3))
    x2 = x.clone()
    x2[:, :, frame] += 1.0
    with torch.no_grad():
        diff = (model(x2, torch.tensor([0.5])) - model(x, torch.tensor([0.5]))).abs().amax(dim=(0, 1))
    return {int(i) for i in torch.nonzero(diff > 1e-6).flatten()}


def test_sliding_window_limits_the_receptive_field_and_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transformer_module, "_warned", set())
    plain = {"cond_token_dim": 0, "global_cond_dim": 0, "depth": 1}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        windowed = _build({**plain, "sliding_window": [1, 2]})
        _build({**plain, "sliding_window": [2, 2]})
    notes = [w for w in caught if "sliding_window" in str(w.message)]
    assert len(notes) == 1 and "flash-attn" in str(notes[0].message)
    # one layer: frame 6 reaches the queries whose band [i - 1, i + 2] holds it, i.e. frames 4..7
    assert _reach(windowed) == {4, 5, 6, 7}
    assert len(_reach(_build(plain))) == 16  # full attention reaches every frame
    deeper = _build({**plain, "depth": 2, "sliding_window": [1, 2]})
    assert _reach(deeper) == set(range(2, 9))  # two layers: two bands


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"sliding_window": [4]}, "config.sliding_window: expected [left, right]"),
        ({"sliding_window": [-1, 4]}, "config.sliding_window: expected [left, right]"),
        ({"norm_type": "batch_norm"}, "config.norm_type: unknown value 'batch_norm'"),
        ({"remove_norms": True, "norm_type": "rms_norm"}, "config.remove_norms: remove_norms: true replaces"),
        ({"norm_type": "rms_norm", "norm_kwargs": {"bias": True}}, "config.norm_kwargs.bias: norm_type 'rms_norm'"),
        ({"attn_kwargs": {"qk_norm": "batch"}}, "config.attn_kwargs.qk_norm: expected one of none, l2, ln, rms, dyt"),
        ({"attn_kwargs": {"differential": "yes"}}, "config.attn_kwargs.differential"),
        ({"attn_kwargs": {"differentail": True}}, "config.attn_kwargs.differentail: unknown key"),
        ({"timestep_features_type": "expo"}, "config.timestep_features_type: only 'learned' is supported"),
    ],
)
def test_config_errors_name_the_key(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        dit_kwargs_from_config(ConfigNode({**BASE, **config}, "test.json", "config"))
    assert expected in str(info.value)


def test_full_config_with_the_options_builds_with_their_keys() -> None:
    """A 0.0.20 ``diffusion_cond`` config using the options builds through the model factory with them."""
    cfg = copy.deepcopy(json.loads((FIXTURES / "dit_adaln_variants" / "model_config.json").read_text()))
    dit = cfg["model"]["diffusion"]["config"]
    dit.update(norm_type="dyt", sliding_window=[4, 4], add_rope=True, conformer=True, final_cross_attn_ix=0,
               attn_kwargs={"qk_norm": "dyt", "differential": True, "feat_scale": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = create_model_from_config(cfg)
    keys = set(model.model.model.state_dict())
    for key in (L0 + "pre_norm.alpha", L0 + "self_attn.q_norm.alpha", L0 + "self_attn.lambda_dc",
                L0 + "rope.inv_freq", L0 + "conformer_scale.scale"):
        assert key in keys, key
    assert "transformer.layers.1.cross_attn.to_q.weight" not in keys
    assert model.model.model.transformer.sliding_window == (4, 4)
