"""ConstantQ: nnAudio CQT2010v2's buffer layout, and that a tone lands in its bin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stable_audio_ops.models.cqt import ConstantQ


def test_buffers_have_nnaudio_names_and_shapes():
    cqt = ConstantQ(88200, hop_length=512, n_octaves=9, bins_per_octave=24)
    shapes = {k: tuple(v.shape) for k, v in cqt.state_dict().items()}
    # no early downsampling at this rate/hop, so no early_downsample_filter
    assert shapes == {"lowpass_filter": (1, 1, 256), "lenghts": (216,),
                      "cqt_kernels_real": (24, 1, 512), "cqt_kernels_imag": (24, 1, 512)}
    kernels = torch.complex(cqt.cqt_kernels_real, cqt.cqt_kernels_imag).squeeze(1)
    assert torch.allclose(kernels.abs().sum(-1), torch.ones(24), atol=1e-5)  # L1-normalised kernels


@pytest.mark.parametrize("midi", [45, 57, 69, 81])
def test_a_tone_peaks_in_its_own_bin_in_every_octave(midi):
    sr, fmin, bins = 16000, 32.70, 12
    cqt = ConstantQ(sr, hop_length=128, n_octaves=7, bins_per_octave=bins, fmin=fmin)
    freq = 440.0 * 2 ** ((midi - 69) / 12)
    t = torch.arange(16000) / sr
    out = cqt(torch.sin(2 * torch.pi * freq * t).view(1, 1, -1))
    assert out.shape[:2] == (1, 7 * bins) and out.shape[-1] == 2
    magnitude = out.pow(2).sum(-1).sqrt()[0, :, 20:-20].mean(-1)
    expected = round(bins * np.log2(freq / fmin))
    assert int(magnitude.argmax()) == expected


def test_too_many_octaves_or_too_small_hop_is_an_error():
    with pytest.raises(ValueError, match="Nyquist"):
        ConstantQ(8000, hop_length=512, n_octaves=9, bins_per_octave=24)
    with pytest.raises(ValueError, match="hop_length"):
        ConstantQ(44100, hop_length=16, n_octaves=9, bins_per_octave=24)


def test_early_downsampling_registers_its_filter_and_keeps_the_frame_rate():
    cqt = ConstantQ(44100, hop_length=1024, n_octaves=3, bins_per_octave=12)
    assert cqt.downsample_factor > 1 and "early_downsample_filter" in cqt.state_dict()
    out = cqt(torch.randn(1, 1, 44100))
    assert out.shape[2] == 44100 // 1024 + 1
