"""Bottlenecks: VAE sampling/KL formula (pinned noise), tanh bound, L2 projection, wasserstein MMD and
noise channels, registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.bottlenecks import (
    BOTTLENECKS,
    L2NormBottleneck,
    TanhBottleneck,
    VAEBottleneck,
    mmd_to_normal,
)


def test_vae_uses_given_noise_and_upstream_kl() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5)
    noise = torch.randn(2, 3, 5)
    z, info = VAEBottleneck().encode(x, return_info=True, noise=noise)
    mean, scale = x.chunk(2, dim=1)
    std = F.softplus(scale) + 1e-4
    assert torch.allclose(z, mean + noise * std)
    expected_kl = (mean**2 + std**2 - torch.log(std**2) - 1).sum(1).mean()
    assert torch.allclose(info["kl"], expected_kl)
    assert info["kl"].dim() == 0


def test_vae_samples_fresh_noise_without_a_pin_and_decode_is_identity() -> None:
    x = torch.randn(1, 4, 16)
    vae = VAEBottleneck()
    assert not torch.equal(vae.encode(x), vae.encode(x))
    assert torch.equal(vae.decode(x), x)


def test_vae_rejects_odd_channels_and_wrong_noise_shape() -> None:
    with pytest.raises(ValueError, match="even channel count"):
        VAEBottleneck().encode(torch.randn(1, 3, 4))
    with pytest.raises(ValueError, match="noise shape"):
        VAEBottleneck().encode(torch.randn(1, 4, 4), noise=torch.randn(1, 2, 5))


def test_kl_is_zero_for_a_standard_normal_posterior() -> None:
    # softplus(s) + 1e-4 == 1  <=>  s = log(e^(1-1e-4) - 1)
    scale = torch.full((1, 2, 3), float(torch.log(torch.expm1(torch.tensor(1 - 1e-4)))))
    _, info = VAEBottleneck().encode(torch.cat([torch.zeros(1, 2, 3), scale], 1), return_info=True)
    assert abs(info["kl"].item()) < 1e-6


def test_tanh_bounds_by_scale_and_decodes_identity() -> None:
    b = TanhBottleneck(scale=2.0)
    x = torch.linspace(-100, 100, 11)[None, None]
    z = b.encode(x)
    assert z.abs().max() <= 2.0 and torch.allclose(z, torch.tanh(x / 2) * 2)
    assert torch.equal(b.decode(z), z)
    z2, info = b.encode(x, return_info=True)
    assert info == {} and torch.equal(z, z2)


def test_l2_norm_projects_on_encode_and_decode() -> None:
    b = L2NormBottleneck()
    x = torch.randn(2, 4, 7) * 3
    assert torch.allclose(b.encode(x).norm(dim=1), torch.ones(2, 7), atol=1e-5)
    assert torch.allclose(b.decode(x).norm(dim=1), torch.ones(2, 7), atol=1e-5)


def test_registry_builds_each_type_from_config() -> None:
    assert {"vae", "tanh", "l2_norm", "wasserstein"} <= set(BOTTLENECKS)
    tanh = BOTTLENECKS["tanh"](ConfigNode({"type": "tanh", "config": {"scale": 3.0}}, "cfg.json", "model.bottleneck"))
    assert tanh.scale == 3.0
    assert BOTTLENECKS["tanh"](ConfigNode({"type": "tanh"})).scale == 1.0
    assert all(not BOTTLENECKS[name](ConfigNode({"type": name})).is_discrete
               for name in ("vae", "tanh", "l2_norm", "wasserstein"))


def test_wasserstein_reports_mmd_only_when_training_and_bounds_with_tanh() -> None:
    torch.manual_seed(0)
    bottleneck = BOTTLENECKS["wasserstein"](ConfigNode({"type": "wasserstein",
                                                        "config": {"use_tanh": True, "tanh_scale": 2.0}}))
    x = torch.randn(2, 3, 50) * 5
    assert bottleneck.eval().encode(x, return_info=True)[1] == {}
    latents, info = bottleneck.train().encode(x, return_info=True)
    torch.testing.assert_close(latents, torch.tanh(x / 2.0) * 2.0)
    # far from N(0, I) (std 5) the MMD is large; for standard normal latents it is near 0
    assert info["mmd"] > 0.1
    assert mmd_to_normal(torch.randn(2, 3, 500)).abs() < 0.02
    bypass = BOTTLENECKS["wasserstein"](ConfigNode({"type": "wasserstein", "config": {"bypass_mmd": True}}))
    assert bypass.train().encode(x, return_info=True)[1]["mmd"] == 0


def test_wasserstein_decode_appends_fresh_or_pinned_noise_channels() -> None:
    bottleneck = BOTTLENECKS["wasserstein"](ConfigNode({"type": "wasserstein", "config": {"noise_augment_dim": 2}}))
    z = torch.randn(1, 3, 4)
    a, b = bottleneck.decode(z), bottleneck.decode(z)
    assert a.shape == (1, 5, 4) and torch.equal(a[:, :3], z) and not torch.equal(a[:, 3:], b[:, 3:])
    pinned = torch.zeros(1, 2, 4)
    assert torch.equal(bottleneck.decode(z, noise=pinned), torch.cat([z, pinned], 1))
    with pytest.raises(ConfigError, match=r"config\.noise_augment_dim: expected a non-negative int"):
        BOTTLENECKS["wasserstein"](ConfigNode({"type": "wasserstein", "config": {"noise_augment_dim": -1}}))
