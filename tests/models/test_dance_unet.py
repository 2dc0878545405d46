"""``DAU1d`` (the Dance Diffusion U-Net): upstream's state-dict keys and shapes, shapes through forward, config errors,
and the two model types that use it (diffusion_uncond generates; diffusion_autoencoder decodes)."""

from __future__ import annotations

import copy

import pytest
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.inference.generation import generate_diffusion_uncond
from stable_audio_ops.models.dance_unet import DiffusionAttnUnet1D, build_dau1d
from stable_audio_ops.models.factory import create_model_from_config

SMALL = {"io_channels": 1, "depth": 3, "n_attn_layers": 1, "channels": [32, 32, 64], "strides": [2, 2],
         "kernel_size": 3}
UNCOND = {"model_type": "diffusion_uncond", "sample_size": 64, "sample_rate": 16000, "audio_channels": 1,
          "model": {"type": "DAU1d", "config": SMALL}, "training": {"learning_rate": 3e-3}}
DIFFAE = {
    "model_type": "diffusion_autoencoder", "sample_size": 64, "sample_rate": 16000, "audio_channels": 1,
    "model": {
        "encoder": {"type": "oobleck", "config": {"in_channels": 1, "channels": 4, "c_mults": [1, 2],
                                                  "strides": [2, 2], "latent_dim": 6}},
        "bottleneck": {"type": "vae"},
        "diffusion": {"type": "DAU1d", "config": {**SMALL, "cond_dim": 3}},
        "latent_dim": 3, "downsampling_ratio": 4, "io_channels": 1,
    },
}


def _res(prefix: str, c_in: int, c_mid: int, c_out: int, k: int, last: bool = False) -> dict[str, tuple]:
    """0.0.20's ResConvBlock: main = [Conv1d, GroupNorm, GELU, Conv1d, GroupNorm|Identity, GELU|Identity],
    skip = a bias-free 1x1 Conv1d when the width changes."""
    keys = {f"{prefix}.main.0.weight": (c_mid, c_in, k), f"{prefix}.main.0.bias": (c_mid,),
            f"{prefix}.main.1.weight": (c_mid,), f"{prefix}.main.1.bias": (c_mid,),
            f"{prefix}.main.3.weight": (c_out, c_mid, k), f"{prefix}.main.3.bias": (c_out,)}
    if not last:
        keys |= {f"{prefix}.main.4.weight": (c_out,), f"{prefix}.main.4.bias": (c_out,)}
    if c_in != c_out:
        keys[f"{prefix}.skip.weight"] = (c_out, c_in, 1)
    return keys


def _attn(prefix: str, c: int) -> dict[str, tuple]:
    """0.0.20's SelfAttention1d: GroupNorm, qkv and output 1x1 convs (the Dropout has no state)."""
    return {f"{prefix}.norm.weight": (c,), f"{prefix}.norm.bias": (c,), f"{prefix}.qkv_proj.weight": (3 * c, c, 1),
            f"{prefix}.qkv_proj.bias": (3 * c,), f"{prefix}.out_proj.weight": (c, c, 1), f"{prefix}.out_proj.bias": (c,)}


def _skip_level(p: str, c_prev: int, c: int, k: int, innermost: bool) -> dict[str, tuple]:
    """A SkipBlock level with attention: main = [Downsample1d (kernel buffer), conv, attn, conv, attn, conv, attn,
    <inner level>, conv, attn, conv, attn, conv to c_prev, attn(c_prev), Upsample1d (kernel buffer)]."""
    keys = {f"{p}.main.0.kernel": (8,), f"{p}.main.14.kernel": (8,)}
    keys |= _res(f"{p}.main.1", c_prev, c, c, k) | _res(f"{p}.main.3", c, c, c, k) | _res(f"{p}.main.5", c, c, c, k)
    keys |= _res(f"{p}.main.8", c if innermost else 2 * c, c, c, k) | _res(f"{p}.main.10", c, c, c, k)
    keys |= _res(f"{p}.main.12", c, c, c_prev, k)
    for i in (2, 4, 6, 9, 11):
        keys |= _attn(f"{p}.main.{i}", c)
    return keys | _attn(f"{p}.main.13", c_prev)


def expected_small_keys() -> dict[str, tuple]:
    """Upstream's DiffusionAttnUnet1D(io_channels=1, depth=3, n_attn_layers=1, channels=[32, 32, 64],
    strides=[2, 2], kernel_size=3), read off its constructor: attn_layer = depth - n_attn_layers = 2, so levels
    i = 3 and i = 2 both have attention (i >= 2); level 1 is a Sequential of 3 convs, level 2, 3 convs, the first
    taking io + cond_dim + 16 Fourier channels = 17, the last ``is_last`` to io_channels."""
    k = 3
    keys = {"timestep_embed.weight": (8, 1)}
    keys |= _res("net.0", 17, 32, 32, k) | _res("net.1", 32, 32, 32, k) | _res("net.2", 32, 32, 32, k)
    keys |= _skip_level("net.3", 32, 32, k, innermost=False)  # level 2: channels[0] -> channels[1]
    keys |= _skip_level("net.3.main.7", 32, 64, k, innermost=True)  # level 3: channels[1] -> channels[2]
    keys |= _res("net.4", 64, 32, 32, k) | _res("net.5", 32, 32, 32, k) | _res("net.6", 32, 32, 1, k, last=True)
    return keys


def test_state_dict_keys_and_shapes_are_upstreams() -> None:
    unet = build_dau1d(ConfigNode(SMALL, "model_config.json", "model.config"))
    assert {k: tuple(v.shape) for k, v in unet.state_dict().items()} == expected_small_keys()
    assert unet.downsampling_ratio == 4
    torch.testing.assert_close(unet.net[3].main[0].kernel.sum(), torch.tensor(1.0))  # a low-pass of unit gain


@pytest.mark.parametrize("extra", [{}, {"learned_resample": True, "strides": [4, 2], "use_snake": True},
                                   {"cond_dim": 3, "cond_noise_aug": True}, {"n_attn_layers": 0, "conv_bias": False}])
def test_forward_keeps_the_shape(extra: dict) -> None:
    torch.manual_seed(0)
    unet = DiffusionAttnUnet1D(**{**SMALL, **extra})
    ratio = 8 if extra.get("learned_resample") else 4
    assert unet.downsampling_ratio == ratio
    x = torch.randn(2, 1, 8 * ratio)
    cond = torch.randn(2, 3, 4 * ratio) if extra.get("cond_dim") else None  # a shorter cond is resized
    with torch.no_grad():
        out = unet(x, torch.rand(2), cond=cond, cond_aug_scale=0.1 if cond is not None else None)
    assert out.shape == x.shape and torch.isfinite(out).all()
    with torch.no_grad():  # the timestep matters
        assert not torch.allclose(out, unet(x, torch.rand(2), cond=cond, cond_aug_scale=0.1 if cond is not None
                                            else None))


@pytest.mark.parametrize(("key", "value", "where", "message"), [
    ("strides", [4, 2], "strides", "must all be 2 without learned_resample"),
    ("strides", [2], "strides", "at least depth - 1 = 2"),
    ("channels", [16, 16, 64], "channels", ">= 32 channels"),
    ("depth", 1, "depth", ">= 2"),
    ("kernel_size", 4, "kernel_size", "must be odd"),
    ("io_channels", 0, "io_channels", "expected a positive int"),
    ("bogus", 1, "bogus", "unknown key"),
])
def test_config_errors_name_the_key(key: str, value, where: str, message: str) -> None:
    config = copy.deepcopy(UNCOND)
    config["model"]["config"][key] = value
    with pytest.raises(ConfigError, match=rf"model\.config\.{where}: .*{message}"):
        create_model_from_config(config)


def test_diffusion_uncond_with_dau1d_generates_seeded_audio() -> None:
    torch.manual_seed(0)
    model = create_model_from_config(copy.deepcopy(UNCOND)).eval()
    assert {"model.timestep_embed.weight", "model.net.6.main.3.weight"} <= set(model.state_dict())  # upstream's
    assert model.min_input_length == 4
    a = generate_diffusion_uncond(model, steps=4, batch_size=2, sample_size=64, seed=3, progress=False)
    b = generate_diffusion_uncond(model, steps=4, batch_size=2, sample_size=64, seed=3, progress=False)
    assert a.shape == (2, 1, 64) and torch.isfinite(a).all() and torch.equal(a, b)
    bad = copy.deepcopy(UNCOND)
    bad["sample_size"] = 66
    with pytest.raises(ConfigError, match="sample_size: 66 is not a multiple of the model's minimum length 4"):
        create_model_from_config(bad)


def test_diffusion_autoencoder_with_a_dau1d_decoder_decodes() -> None:
    torch.manual_seed(0)
    model = create_model_from_config(copy.deepcopy(DIFFAE)).eval()
    assert "diffusion.model.net.0.main.0.weight" in model.state_dict()
    assert tuple(model.state_dict()["diffusion.model.net.0.main.0.weight"].shape) == (32, 1 + 3 + 16, 3)
    audio = torch.randn(2, 1, 64) * 0.3
    with torch.no_grad():
        latents = model.encode(audio)
        out = model.decode(latents, steps=3, generator=torch.Generator().manual_seed(0))
        again = model.decode(latents, steps=3, generator=torch.Generator().manual_seed(0))
        other = model.decode(torch.randn_like(latents), steps=3, generator=torch.Generator().manual_seed(0))
    assert latents.shape == (2, 3, 16) and out.shape == (2, 1, 64) and torch.isfinite(out).all()
    assert torch.equal(out, again) and not torch.allclose(out, other)  # the latents steer the decoder
    bad = copy.deepcopy(DIFFAE)
    bad["model"]["diffusion"]["config"]["cond_dim"] = 2
    with pytest.raises(ConfigError, match=r"model\.diffusion\.config\.cond_dim: must be latent_dim=3"):
        create_model_from_config(bad)


def test_attention_splits_heads_as_upstreams_cpu_path() -> None:
    """Heads are channel groups of q / k / v in that order; softmax((q s)(k s)^T) v with s = d^-1/4, so a
    checkpoint's qkv weights mean the same here."""
    from stable_audio_ops.models.dance_unet import SelfAttention1d

    torch.manual_seed(0)
    attn = SelfAttention1d(64, 2)
    x = torch.randn(2, 64, 10)
    n, c, s = x.shape
    qkv = attn.qkv_proj(attn.norm(x)).view(n, 6, 32, s).transpose(2, 3)
    q, k, v = qkv.chunk(3, dim=1)
    scale = 32 ** -0.25
    y = ((q * scale) @ (k.transpose(2, 3) * scale)).softmax(3) @ v
    expected = x + attn.out_proj(y.transpose(2, 3).contiguous().view(n, c, s))
    with torch.no_grad():
        torch.testing.assert_close(attn(x), expected)
