"""The wavelet transform behind the ``wavelet`` pretransform: perfect reconstruction, band layout, errors."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.models.wavelets import WaveletDecode1d, WaveletEncode1d, wavelet_filter_bank


@pytest.mark.parametrize(("wavelet", "channels", "levels"), [("bior4.4", 2, 3), ("bior2.2", 1, 2),
                                                              ("bior6.8", 1, 1)])
def test_decode_inverts_encode(wavelet: str, channels: int, levels: int) -> None:
    """Biorthogonal filter banks reconstruct exactly (up to float rounding), edges included: the reflect
    padding keeps them invertible."""
    audio = torch.randn(2, channels, 128, dtype=torch.float32)
    encoded = WaveletEncode1d(channels, levels, wavelet)(audio)
    assert encoded.shape == (2, channels * 2 ** levels, 128 // 2 ** levels)
    torch.testing.assert_close(WaveletDecode1d(channels, levels, wavelet)(encoded), audio, atol=1e-5, rtol=1e-5)


def test_low_band_carries_a_slow_signal() -> None:
    """A slow sine lands in the first (lowest) band; the high bands stay near zero."""
    t = torch.arange(256, dtype=torch.float32)
    audio = torch.sin(2 * torch.pi * t / 128)[None, None]
    encoded = WaveletEncode1d(1, 2, "bior4.4")(audio)[..., 4:-4]  # skip the padded edges
    assert encoded[:, 0].abs().max() > 1.0
    assert encoded[:, 1:].abs().max() < 0.05 * encoded[:, 0].abs().max()


def test_bad_wavelets_and_lengths_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown wavelet 'bior9.9'"):
        wavelet_filter_bank("bior9.9")
    with pytest.raises(ValueError, match="even-length filters"):
        wavelet_filter_bank("db2")
    with pytest.raises(ValueError, match="divisible by 2\\*\\*levels = 8"):
        WaveletEncode1d(1, 3)(torch.randn(1, 1, 100))
