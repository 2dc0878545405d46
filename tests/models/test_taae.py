"""``taae`` encoder/decoder: 0.0.20's state-dict keys, downsampling and round-trip shapes, the sliding window
really bounding what a frame sees, the one flash-attn warning, a tiny autoencoder that learns, keyed config errors."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models import taae
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.taae import TAAEBlock, build_taae_encoder
from tests.training.autoencoder_fixtures import build, fit, tiny_config, tones

ENCODER = {"in_channels": 1, "channels": 8, "c_mults": [1, 2], "strides": [2, 4], "transformer_depths": [1, 2],
           "latent_dim": 8, "sliding_window": [3, 4]}
DECODER = {"out_channels": 1, "channels": 8, "c_mults": [1, 2], "strides": [2, 4], "transformer_depths": [1, 2],
           "latent_dim": 4, "sliding_window": [3, 4]}


def autoencoder_config(encoder: dict | None = None, decoder: dict | None = None) -> dict:
    return {"model_type": "autoencoder", "sample_rate": 16000, "sample_size": 256, "audio_channels": 1,
            "model": {"encoder": {"type": "taae", "config": {**ENCODER, **(encoder or {})}},
                      "decoder": {"type": "taae", "config": {**DECODER, **(decoder or {})}},
                      "bottleneck": {"type": "vae"}, "latent_dim": 4, "downsampling_ratio": 8, "io_channels": 1}}


def build_quietly(config: dict):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return create_model_from_config(config)


# --- the expected keys, written from 0.0.20's module structure (autoencoders.TAAE*, transformer.TransformerBlock) ---

def _conv(prefix: str, bias: bool = True) -> list[str]:
    return [f"{prefix}.weight_g", f"{prefix}.weight_v"] + ([f"{prefix}.bias"] if bias else [])


def _snake(prefix: str, use_snake: bool) -> list[str]:
    return [f"{prefix}.alpha", f"{prefix}.beta"] if use_snake else []


def _residual_unit(prefix: str, use_snake: bool) -> list[str]:
    """blocks.ResidualUnit: layers = [act, WNConv k7, act, WNConv k1] (ELU without snake)."""
    return (_snake(f"{prefix}.layers.0", use_snake) + _conv(f"{prefix}.layers.1")
            + _snake(f"{prefix}.layers.2", use_snake) + _conv(f"{prefix}.layers.3"))


def _transformer_block(prefix: str, layer_scale: bool, conformer: bool) -> list[str]:
    """TransformerBlock(dim_heads=128, attn_kwargs={'qk_norm': 'ln'}, add_rope=True) with the bias-free LayerNorm."""
    keys = ["pre_norm.gamma", "pre_norm.beta", "self_attn.to_qkv.weight", "self_attn.to_out.weight",
            "self_attn.q_norm.weight", "self_attn.q_norm.bias", "self_attn.k_norm.weight", "self_attn.k_norm.bias",
            "ff_norm.gamma", "ff_norm.beta", "ff.ff.0.proj.weight", "ff.ff.0.proj.bias", "ff.ff.2.weight",
            "ff.ff.2.bias", "rope.inv_freq"]
    if layer_scale:
        keys += ["self_attn_scale.scale", "ff_scale.scale"]
    if conformer:
        keys += ["conformer.in_norm.gamma", "conformer.in_norm.beta", "conformer.pointwise_conv.weight",
                 "conformer.glu.proj.weight", "conformer.glu.proj.bias", "conformer.depthwise_conv.weight",
                 "conformer.mid_norm.gamma", "conformer.mid_norm.beta", "conformer.pointwise_conv_2.weight"]
        keys += ["conformer_scale.scale"] if layer_scale else []
    return [f"{prefix}.{k}" for k in keys]


def _transformers(prefix: str, depth: int, layer_scale: bool, conformer: bool) -> list[str]:
    """ModuleList [Transpose, TransformerBlock x depth, Transpose]: the blocks sit at 1..depth."""
    return [k for t in range(1, depth + 1) for k in _transformer_block(f"{prefix}.{t}", layer_scale, conformer)]


def upstream_taae_keys(cfg_enc: dict, cfg_dec: dict, use_snake: bool, dilated: bool, layer_scale: bool,
                       conformer: bool) -> list[str]:
    """TAAEEncoder/TAAEDecoder with mapping_style 'conv' (all strides > 1)."""
    keys = _conv("encoder.layers.0")
    for i, depth in enumerate(cfg_enc["transformer_depths"]):
        block = f"encoder.layers.{1 + i}"
        units = [k for j in range(3) for k in _residual_unit(f"{block}.layers.{j}", use_snake)] if dilated else []
        o = 3 if dilated else 0
        keys += units + _snake(f"{block}.layers.{o}", use_snake) + _conv(f"{block}.layers.{o + 1}")
        keys += _transformers(f"{block}.layers.{o + 2}", depth, layer_scale, conformer)
    n = len(cfg_enc["transformer_depths"])
    keys += _snake(f"encoder.layers.{n + 1}", use_snake) + _conv(f"encoder.layers.{n + 2}")

    keys += _conv("decoder.layers.0")
    depths = cfg_dec["transformer_depths"]
    for b, i in enumerate(range(len(depths), 0, -1)):  # deepest stage first
        block = f"decoder.layers.{1 + b}"
        keys += _transformers(f"{block}.layers.0", depths[i - 1], layer_scale, conformer)
        keys += _snake(f"{block}.layers.1", use_snake) + _conv(f"{block}.layers.2")
        keys += [k for j in range(3) for k in _residual_unit(f"{block}.layers.{3 + j}", use_snake)] if dilated else []
    n = len(depths)
    keys += _snake(f"decoder.layers.{n + 1}", use_snake) + _conv(f"decoder.layers.{n + 2}", bias=False)
    return keys


@pytest.mark.parametrize(("options", "flags"), [
    ({}, (False, False, True, False)),
    ({"use_snake": True, "use_dilated_conv": True, "conformer": True}, (True, True, True, True)),
    ({"layer_scale": False, "conformer": True}, (False, False, False, True)),
])
def test_state_dict_keys_are_0_0_20s(options: dict, flags: tuple[bool, bool, bool, bool]) -> None:
    model = build_quietly(autoencoder_config(options, options))
    expected = upstream_taae_keys(ENCODER, DECODER, *flags)
    assert sorted(model.state_dict()) == sorted(expected)


def test_linear_mapping_keys_and_head_widths() -> None:
    """``mapping_style: linear`` swaps the edge convs for Linear layers between Transposes (indices shift by
    two); a 256-wide stage has two 128-dim heads with RoPE on 64 dims, an 8-wide one a single 8-dim head."""
    model = build_quietly(autoencoder_config({"mapping_style": "linear", "channels": 128, "c_mults": [1, 2],
                                              "transformer_depths": [0, 1]},
                                             {"mapping_style": "none", "channels": 8}))
    state = model.state_dict()
    assert state["encoder.layers.1.weight"].shape == (128, 1)  # Linear(in_channels, c0) after a Transpose
    assert not any(k.startswith("encoder.layers.3.layers.2.") for k in state)  # depth 0: no transformer blocks
    layer = "encoder.layers.4.layers.2.1"
    assert state[f"{layer}.self_attn.to_qkv.weight"].shape == (3 * 256, 256)
    assert state[f"{layer}.self_attn.q_norm.weight"].shape == (128,)
    assert state[f"{layer}.rope.inv_freq"].shape == (32,)
    assert state[f"{layer}.ff.ff.0.proj.weight"].shape == (2 * 4 * 256, 256)
    assert state["encoder.layers.6.weight"].shape == (8, 256)  # Linear(c_last, latent_dim)
    # decoder 'none': Linear in, and the last stage maps straight to out_channels with nothing after it
    assert state["decoder.layers.1.weight"].shape == (16, 4)
    assert state["decoder.layers.4.layers.2.weight_v"].shape == (8, 1, 4)
    assert not any(k.startswith("decoder.layers.5") for k in state)
    assert state["decoder.layers.3.layers.0.1.rope.inv_freq"].shape == (4,)  # 16 wide: one head, RoPE on 8


def test_encode_decode_shapes_follow_the_strides() -> None:
    model = build_quietly(autoencoder_config()).eval()
    audio = torch.randn(2, 1, 256)
    with torch.no_grad():
        latents = model.encode(audio)
        assert latents.shape == (2, 4, 256 // 8)
        assert model.decode(latents).shape == (2, 1, 256)


def test_snake_decoder_runs_where_stages_change_width() -> None:
    # 0.0.20 sizes the decoder stage's Snake for the stage's output width and fails here in forward
    options = {"use_snake": True, "use_dilated_conv": True}
    model = build_quietly(autoencoder_config(options, options)).eval()
    snake = model.decoder.layers[1].layers[1]  # first stage: 16 -> 8 channels, Snake before the upsampling
    assert snake.alpha.shape == (16,)
    with torch.no_grad():
        assert model.decode(model.encode(torch.randn(1, 1, 256))).shape == (1, 1, 256)


def _randomised_block(window: list[int] | None) -> TAAEBlock:
    """A stride-1 block whose branches are not zero/1e-5 at init, so every attended frame moves the output."""
    torch.manual_seed(0)
    block = TAAEBlock(8, 8, stride=1, transformer_depth=2, sliding_window=window, layer_scale=False).eval()
    with torch.no_grad():
        for param in block.parameters():
            param.normal_(0.0, 0.5)
    return block


def test_sliding_window_bounds_what_each_frame_sees() -> None:
    """Two layers with window (left 2, right 3): output i sees inputs i-4 .. i+6 and nothing else."""
    block = _randomised_block([2, 3])
    x = torch.randn(1, 8, 40)
    y = x.clone()
    y[..., 20] += 3.0 * torch.randn(8)  # not a constant shift, which the pre-norm would remove
    with torch.no_grad():
        changed = (block(x) - block(y)).abs().amax(dim=1)[0]
    reach = [i for i in range(40) if changed[i] > 1e-4]
    assert reach == list(range(14, 25))
    assert changed[[i for i in range(40) if i not in reach]].max() <= 1e-6


def test_null_sliding_window_is_full_attention() -> None:
    block = _randomised_block(None)
    x = torch.randn(1, 8, 40)
    y = x.clone()
    y[..., 20] += 3.0 * torch.randn(8)
    with torch.no_grad():
        assert ((block(x) - block(y)).abs().amax(dim=1)[0] > 1e-4).all()


def test_one_warning_says_the_window_runs_as_band_masked_sdpa(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(taae, "_warned", set())  # as in a fresh process
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        create_model_from_config(autoencoder_config())
        create_model_from_config(autoencoder_config())
    messages = [str(w.message) for w in caught if "sliding_window" in str(w.message)]
    assert len(messages) == 1 and "band mask" in messages[0] and "flash-attn is not used" in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_model_from_config(autoencoder_config({"sliding_window": None}, {"sliding_window": None}))


def test_tiny_taae_autoencoder_trains() -> None:
    cfg = tiny_config(sample_size=512)
    cfg["model"]["encoder"] = {"type": "taae", "config": {**ENCODER, "checkpointing": True}}
    cfg["model"]["decoder"] = {"type": "taae", "config": DECODER}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        module = build(copy.deepcopy(cfg))
    rows = fit(module, tones(cfg), steps=12)
    assert len(rows) == 12
    assert rows[-1]["train/mrstft_loss"] < 0.9 * rows[0]["train/mrstft_loss"], (rows[0], rows[-1])


@pytest.mark.parametrize(("part", "cfg", "message"), [
    ("encoder", {"transformer_depths": [1]}, r"model\.encoder\.config\.transformer_depths: has 1 entries"),
    ("encoder", {"channels": 96, "c_mults": [1, 2]}, r"model\.encoder\.config\.c_mults: stage 1 is 96 x 2 = 192"),
    ("encoder", {"sliding_window": [4]}, r"model\.encoder\.config\.sliding_window: expected \[left, right\]"),
    ("encoder", {"mapping_style": "conv2"}, r"model\.encoder\.config\.mapping_style: unknown value 'conv2'"),
    ("encoder", {"strides": [8, 1]}, r"model\.encoder\.config\.strides: stage 1 has stride 1"),
    ("encoder", {"natten_kernel_size": 7}, r"model\.encoder\.config\.natten_kernel_size: unknown key"),
    ("decoder", {"strides": [2, 3]}, r"model\.decoder\.config\.strides: odd stride 3"),
    ("encoder", {"strides": [2, 2]}, r"model\.downsampling_ratio: is 8 but the encoder strides"),
])
def test_bad_config_names_the_key(part: str, cfg: dict, message: str) -> None:
    config = autoencoder_config(cfg if part == "encoder" else None, cfg if part == "decoder" else None)
    with pytest.raises(ConfigError, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        create_model_from_config(config, source="m.json")


def test_builder_defaults_are_0_0_20s() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        enc = build_taae_encoder(ConfigNode({"type": "taae", "config": {"transformer_depths": [0, 0, 0, 1]}}))
    assert enc.in_channels == 2 and enc.latent_dim == 32 and enc.strides == [2, 4, 8, 8]
    assert enc.layers[4].layers[2][1].self_attn.num_heads == 8  # 1024 wide: eight 128-dim heads
    assert enc.layers[1].window == (63, 64)
