"""``local_attn`` encoder/decoder: upstream's state-dict keys, downsampling and round-trip shapes, the local window
really bounding what a frame sees (centred and causal), heads narrower than the rotary table, a tiny autoencoder
that learns, and keyed config errors. Upstream cannot build this type (see the module docstring)."""

from __future__ import annotations

import copy

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.local_attn import LocalTransformer, local_window
from tests.training.autoencoder_fixtures import build, fit, tiny_config, tones

ENCODER = {"in_channels": 1, "out_channels": 8, "embed_dims": [16, 32], "heads": [2, 4], "depths": [1, 2],
           "ratios": [2, 4], "local_attn_window_size": 8}
DECODER = {"in_channels": 4, "out_channels": 1, "embed_dims": [32, 16], "heads": [4, 2], "depths": [2, 1],
           "ratios": [4, 2], "local_attn_window_size": 8}


def autoencoder_config(encoder: dict | None = None, decoder: dict | None = None) -> dict:
    return {"model_type": "autoencoder", "sample_rate": 16000, "sample_size": 256, "audio_channels": 1,
            "model": {"encoder": {"type": "local_attn", "config": {**ENCODER, **(encoder or {})}},
                      "decoder": {"type": "local_attn", "config": {**DECODER, **(decoder or {})}},
                      "bottleneck": {"type": "vae"}, "latent_dim": 4, "downsampling_ratio": 8, "io_channels": 1}}


def _transformer(prefix: str, depth: int) -> list[str]:
    """ContinuousLocalTransformer: rotary_pos_emb, layers = [[LayerNorm, Attention, Identity, LayerNorm,
    FeedForward(no_bias=True)]] (project_in/out are Identity)."""
    keys = [f"{prefix}.rotary_pos_emb.inv_freq"]
    for j in range(depth):
        layer = f"{prefix}.layers.{j}"
        keys += [f"{layer}.0.gamma", f"{layer}.0.beta", f"{layer}.1.to_qkv.weight", f"{layer}.1.to_out.weight",
                 f"{layer}.3.gamma", f"{layer}.3.beta", f"{layer}.4.ff.0.proj.weight", f"{layer}.4.ff.0.proj.bias",
                 f"{layer}.4.ff.2.weight"]
    return keys


def upstream_local_attn_keys(part: str, cfg: dict, resample: str) -> list[str]:
    """TransformerEncoder1D/Decoder1D: project_in, layers (Down/UpsampleBlock1D: transformer, project_in when the
    width changes, project_down/up), project_out; every Linear bias-free."""
    keys = [f"{part}.project_in.weight", f"{part}.project_out.weight"]
    dims = cfg["embed_dims"]
    for i, depth in enumerate(cfg["depths"]):
        block = f"{part}.layers.{i}"
        keys += _transformer(f"{block}.transformer", depth) + [f"{block}.{resample}.weight"]
        if i > 0 and dims[i - 1] != dims[i]:
            keys.append(f"{block}.project_in.weight")
    return keys


def test_state_dict_keys_and_shapes_are_upstreams() -> None:
    state = create_model_from_config(autoencoder_config()).state_dict()
    expected = (upstream_local_attn_keys("encoder", ENCODER, "project_down")
                + upstream_local_attn_keys("decoder", DECODER, "project_up"))
    assert sorted(state) == sorted(expected)
    assert state["encoder.layers.0.project_down.weight"].shape == (16, 2 * 16)  # c * r -> c
    assert state["decoder.layers.0.project_up.weight"].shape == (4 * 32, 32)
    assert state["encoder.layers.1.transformer.layers.0.1.to_qkv.weight"].shape == (3 * 32, 32)
    assert state["encoder.layers.1.transformer.layers.0.4.ff.0.proj.weight"].shape == (2 * 2 * 32, 32)  # ff_mult 2
    assert state["encoder.layers.0.transformer.rotary_pos_emb.inv_freq"].shape == (16,)  # max(8 // 2, 32) dims


def test_encode_decode_shapes_follow_the_ratios() -> None:
    model = create_model_from_config(autoencoder_config()).eval()
    with torch.no_grad():
        latents = model.encode(torch.randn(2, 1, 256))
        assert latents.shape == (2, 4, 32)
        assert model.decode(latents).shape == (2, 1, 256)
        # a length that is not a multiple of prod(ratios) is zero-padded at the end
        assert model.encoder(torch.randn(1, 1, 250)).shape == (1, 8, 32)


def test_folding_keeps_upstreams_channel_order() -> None:
    """``b (n r) c -> b n (c r)``: the folded frame lists channel 0 of its r frames first."""
    model = create_model_from_config(autoencoder_config())
    block = model.encoder.layers[0]
    block.transformer = torch.nn.Identity()
    with torch.no_grad():
        block.project_down.weight.copy_(torch.eye(32)[:16])  # keep the first 16 of the 32 folded features
        x = torch.arange(4 * 16, dtype=torch.float32).reshape(1, 4, 16)  # frame t, channel c -> 16 t + c
        out = block(x)
    assert out[0, 0, :4].tolist() == [0.0, 16.0, 1.0, 17.0]  # (c0, r0), (c0, r1), (c1, r0), (c1, r1)


def _randomised(window: int, causal: bool) -> LocalTransformer:
    torch.manual_seed(0)
    transformer = LocalTransformer(16, depth=1, heads=2, local_attn_window_size=window, causal=causal).eval()
    with torch.no_grad():
        for param in transformer.parameters():
            param.normal_(0.0, 0.5)  # zero-initialised outputs would hide every interaction
    return transformer


@pytest.mark.parametrize(("causal", "reach"), [(False, range(19, 23)), (True, range(20, 24))])
def test_window_bounds_what_each_frame_sees(causal: bool, reach: range) -> None:
    """Window 4: centred, frame i sees i-2 .. i+1; causal, i-3 .. i. So a change at frame 20 reaches exactly
    frames 19 .. 22 (centred) or 20 .. 23 (causal), and no other output moves."""
    assert local_window(4, causal) == ((3, 0) if causal else (2, 1))
    transformer = _randomised(4, causal)
    x = torch.randn(1, 40, 16)
    y = x.clone()
    y[:, 20] += 3.0 * torch.randn(16)
    with torch.no_grad():
        changed = (transformer(x) - transformer(y)).abs().amax(dim=-1)[0]
    assert [i for i in range(40) if changed[i] > 1e-4] == list(reach)
    assert changed[[i for i in range(40) if i not in reach]].max() <= 1e-6


def test_heads_narrower_than_the_rotary_table_work() -> None:
    """8-dim heads under a 32-dim rotary table (upstream's default first stage: 96 wide, 12 heads) fail upstream;
    here the rotation covers the whole head with the table's first 4 frequencies, so positions still matter."""
    transformer = _randomised(64, causal=False)
    narrow = LocalTransformer(96, depth=1, heads=12)
    assert narrow.rotary_pos_emb.inv_freq.shape == (16,) and narrow._rotary(10).shape == (10, 8)
    x = torch.randn(1, 6, 16).repeat(1, 2, 1)  # two identical halves: only the positions tell them apart
    with torch.no_grad():
        out = transformer(x)
        assert torch.isfinite(narrow(torch.randn(2, 10, 96))).all()
    assert not torch.allclose(out[:, :6], out[:, 6:], atol=1e-4)


def test_tiny_local_attn_autoencoder_trains() -> None:
    """Fact sheet [bug@HEAD]: upstream's constructor raises TypeError (natten_kernel_size); here it builds and learns."""
    cfg = tiny_config(sample_size=512)
    cfg["model"]["encoder"] = {"type": "local_attn", "config": ENCODER}
    cfg["model"]["decoder"] = {"type": "local_attn", "config": DECODER}
    module = build(copy.deepcopy(cfg))
    rows = fit(module, tones(cfg), steps=12)
    assert len(rows) == 12
    assert rows[-1]["train/mrstft_loss"] < 0.9 * rows[0]["train/mrstft_loss"], (rows[0], rows[-1])


@pytest.mark.parametrize(("part", "cfg", "message"), [
    ("encoder", {"heads": [3, 4]}, r"model\.encoder\.config\.heads: stage 0: 3 heads do not divide its width 16"),
    ("encoder", {"ratios": [8]}, r"model\.encoder\.config\.ratios: has 1 entries but depths has 2"),
    ("encoder", {"cond_dim": 4}, r"model\.encoder\.config\.cond_dim: must be 0"),
    ("decoder", {"natten_kernel_size": 7}, r"model\.decoder\.config\.natten_kernel_size: unknown key"),
    ("decoder", {"in_channels": None}, r"model\.decoder\.config\.in_channels: missing required key"),
    ("decoder", {"in_channels": 6}, r"model\.decoder\.config\.in_channels: is 6 but model\.latent_dim is 4"),
    ("encoder", {"out_channels": 4}, r"model\.encoder\.config\.out_channels: is 4 but must be 8 "),
    ("encoder", {"ratios": [2, 2]}, r"model\.downsampling_ratio: is 8 but the encoder strides"),
])
def test_bad_config_names_the_key(part: str, cfg: dict, message: str) -> None:
    config = autoencoder_config(cfg if part == "encoder" else None, cfg if part == "decoder" else None)
    if cfg.get("in_channels", 0) is None:
        del config["model"]["decoder"]["config"]["in_channels"]
    with pytest.raises(ConfigError, match=message):
        create_model_from_config(config, source="m.json")
