"""Anti-aliased activations (0.0.20's ``antialias_activation``): the filters, the aliasing they remove, the
state-dict layout of upstream's alias_free_torch.Activation1d, and Oobleck configs that use them."""

from __future__ import annotations

import copy
import math

import torch

from stable_audio_ops.models.antialias import AntiAliasedActivation, kaiser_sinc_filter
from stable_audio_ops.models.factory import create_model_from_config
from tests.models.test_factory import VAE_CONFIG


def test_filter_is_a_symmetric_unit_gain_low_pass() -> None:
    taps = kaiser_sinc_filter(0.25, 0.3, 12).flatten()
    assert taps.shape == (12,) and torch.allclose(taps, taps.flip(0)) and math.isclose(float(taps.sum()), 1.0, rel_tol=1e-6)
    response = torch.fft.rfft(taps, n=512).abs()
    assert response[:64].min() > 0.9  # passband (below 1/8 of the rate)
    assert response[200:].max() < 0.05  # stopband (above ~0.39 of the rate)


def _tone_spectrum(activation: torch.nn.Module, cycles_per_sample: float, n: int = 4096) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64).float()
    x = (0.9 * torch.sin(2 * math.pi * cycles_per_sample * t)).view(1, 1, n)
    with torch.no_grad():
        y = activation(x)[0, 0, 256:-256]
    return torch.fft.rfft(y * torch.hann_window(len(y))).abs()


def test_aliased_harmonics_are_suppressed_and_the_tone_kept() -> None:
    cube = type("Cube", (torch.nn.Module,), {"forward": lambda self, x: x ** 3})
    f = 0.28  # the cube's 3rd harmonic (0.84) folds back to 0.16 of the rate
    plain, clean = _tone_spectrum(cube(), f), _tone_spectrum(AntiAliasedActivation(cube()), f)
    n = (len(plain) - 1) * 2
    alias_bin, tone_bin = round(0.16 * n), round(f * n)
    window = slice(alias_bin - 3, alias_bin + 4)
    assert plain[window].max() > 0.2 * plain[tone_bin - 3: tone_bin + 4].max()  # without: a strong alias
    # with: > 18 dB lower (upstream's 12-tap filters are short, so not more; measured 22 dB here)
    assert clean[window].max() < 0.12 * plain[window].max()
    assert clean[tone_bin - 3: tone_bin + 4].max() > 0.8 * plain[tone_bin - 3: tone_bin + 4].max()


def test_state_dict_keys_are_alias_free_torchs() -> None:
    act = AntiAliasedActivation(torch.nn.Identity())
    assert sorted(act.state_dict()) == ["downsample.lowpass.filter", "upsample.filter"]
    assert act(torch.randn(2, 3, 50)).shape == (2, 3, 50)


def test_oobleck_antialias_activation_builds_with_0_0_20s_layout_and_runs() -> None:
    cfg = copy.deepcopy(VAE_CONFIG)
    for part in ("encoder", "decoder"):
        cfg["model"][part]["config"].update(antialias_activation=True, use_snake=True)
    model = create_model_from_config(cfg).eval()
    keys = set(model.state_dict())
    wrapped = {k.rsplit(".act.", 1)[0] for k in keys if ".act.alpha" in k}
    # encoder: only the last activation; decoder: one per block (before upsampling) and the last one
    n_blocks = len(cfg["model"]["decoder"]["config"]["strides"])
    assert sum(k.startswith("encoder.") for k in wrapped) == 1
    assert sum(k.startswith("decoder.") for k in wrapped) == n_blocks + 1
    assert all(f"{prefix}.upsample.filter" in keys and f"{prefix}.downsample.lowpass.filter" in keys for prefix in wrapped)
    audio = torch.randn(1, cfg["audio_channels"], 256)
    with torch.no_grad():
        assert model.decode(model.encode(audio)).shape == audio.shape
