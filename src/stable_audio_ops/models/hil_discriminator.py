"""The ``hil`` discriminator of stable-audio-tools 0.0.20: EnCodec's multi-scale STFT critics plus
PQMF filter-bank critics, with a choice of GAN objective.

Filter-bank critic ``p`` splits the audio into ``periods[p]`` sub-bands with a Kaiser-window PQMF
(``taps``, ``beta``, ``cutoff_freqs[p]``; period 1 is the full band, no filter), lays the bands out as a
``[channels, bands, frames]`` image and runs 2-D convs with ``(1, k)`` kernels and ``(1, s)`` strides along
time only, LeakyReLU(0.1) after each, then a 1-channel ``(1, 3)`` ``conv_post``; every conv output (the
last included) is a feature map, the flattened ``conv_post`` output the logits. Convs are weight-normed
with the parametrization API (keys ``parametrizations.weight.original0/1``) as 0.0.20 builds them;
``norm: spectral_norm`` uses torch's spectral norm (0.0.20 names it without importing it, a NameError).

The STFT critics are :class:`~.discriminators.MultiScaleSTFTDiscriminator` (keys
``stft_discriminators.discriminators.{i}.*``). Both families get the same options, each taking the ones
it knows (``filters`` is required, as for ``encodec``); the ``hil`` builder splits them. Losses: ``loss_type`` ``rpgan`` (default),
``hinge`` or ``sigmoid_rpgan`` per critic, averaged over all critics; feature matching as ``encodec``.

Differences from 0.0.20: ``n_chroma > 0`` and ``add_noise`` are refused (torchaudio's prototype chroma
transform and the psychoacoustic noise model are not part of this package).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from stable_audio_ops.models.gan_losses import GAN_OBJECTIVES, multi_critic_losses

NORMS = {"weight_norm": weight_norm, "spectral_norm": spectral_norm}


def kaiser_prototype(taps: int, cutoff_ratio: float, beta: float) -> np.ndarray:
    """``taps + 1`` coefficients of the PQMF prototype lowpass: a windowed sinc at ``cutoff_ratio`` x Nyquist."""
    if taps % 2 or not 0.0 < cutoff_ratio < 1.0:
        raise ValueError(f"PQMF needs an even number of taps and 0 < cutoff < 1; got {taps} and {cutoff_ratio}")
    n = np.arange(taps + 1) - 0.5 * taps
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc = np.sin(np.pi * cutoff_ratio * n) / (np.pi * n)
    sinc[taps // 2] = cutoff_ratio
    return sinc * np.kaiser(taps + 1, beta)


class KaiserPQMF(nn.Module):
    """Analysis-only cosine-modulated filter bank (``pqmf_filter``: ``[subbands, 1, taps + 1]``)."""

    def __init__(self, subbands: int, taps: int, cutoff_freq: float, beta: float):
        super().__init__()
        prototype = torch.from_numpy(kaiser_prototype(taps, cutoff_freq, beta)).float()[None]
        k = torch.arange(subbands, dtype=torch.float32)[:, None]
        n = torch.arange(taps + 1, dtype=torch.float32)[None]
        phase = (2 * k + 1) * np.pi / (2 * subbands) * (n - taps / 2) + (-1) ** k * np.pi / 4
        self.taps, self.subbands = taps, subbands
        self.register_buffer("pqmf_filter", (2 * prototype * torch.cos(phase) * subbands**0.5)[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[n, t] -> [n, subbands, t / subbands]``."""
        return F.conv1d(x[:, None], self.pqmf_filter, stride=self.subbands, padding=self.taps // 2)


class FilterBankDiscriminator(nn.Module):
    """One filter-bank critic; ``forward(x) -> (logits [b, n], feature maps)``."""

    def __init__(self, period: int, taps: int = 0, beta: float = 0.0, cutoff_freq: float = 0.0,
                 kernel_sizes: Sequence[int] = (5, 5, 5, 5, 5), strides: Sequence[int] = (3, 3, 3, 3, 3, 1),
                 channels: Sequence[int] = (32, 128, 256, 512, 1024, 1024), norm: str = "weight_norm",
                 in_channels: int = 1):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        self.period = period
        self.in_channels = in_channels
        if period == 1:
            self.pqmf: nn.Module = nn.Identity()
        else:
            if taps <= 0 or beta <= 0.0 or cutoff_freq <= 0.0:
                raise ValueError(f"a filter-bank critic with period {period} needs taps, beta and cutoff_freq > 0")
            self.pqmf = KaiserPQMF(period, taps, cutoff_freq, beta)
        norm_f = NORMS[norm]
        self.convs = nn.ModuleList()
        c_in = in_channels
        # zip stops at the shortest list, as upstream (its default strides have one entry more)
        for ch, stride, kernel in zip(channels, strides, kernel_sizes, strict=False):
            self.convs.append(norm_f(nn.Conv2d(c_in, ch, (1, kernel), (1, stride), padding=(0, (kernel - 1) // 2))))
            c_in = ch
        self.conv_post = norm_f(nn.Conv2d(c_in, 1, (1, 3), 1, padding=(0, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        bands = self.pqmf(x.reshape(b * c, t))
        x = bands.reshape(b, c, *bands.shape[1:]) if self.period != 1 else bands.reshape(b, c, 1, t)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            features.append(x)
        x = self.conv_post(x)
        features.append(x)
        return torch.flatten(x, 1, -1), features


class MultiFilterBankDiscriminator(nn.Module):
    """One :class:`FilterBankDiscriminator` per period (``discriminators.{i}``)."""

    def __init__(self, periods: Sequence[int] = (1, 2, 3, 5, 7, 11), taps: int = 256, beta: float = 8.0,
                 cutoff_freqs: Sequence[float] = (0, 0.253881, 0.170546, 0.103881, 0.075310, 0.049338),
                 kernel_sizes: Sequence[int] = (5, 5, 5, 5, 5), strides: Sequence[int] = (3, 3, 3, 3, 1),
                 channels: Sequence[int] = (32, 128, 512, 1024, 1024), norm: str = "weight_norm",
                 in_channels: int = 1):
        super().__init__()
        if not len(strides) == len(channels) == len(kernel_sizes):
            raise ValueError(f"strides, channels and kernel_sizes must be equally long; got {len(strides)}, "
                             f"{len(channels)}, {len(kernel_sizes)}")
        if len(cutoff_freqs) < len(periods):
            raise ValueError(f"cutoff_freqs needs one entry per period ({len(periods)}); got {len(cutoff_freqs)}")
        self.discriminators = nn.ModuleList(
            FilterBankDiscriminator(p, taps=taps, beta=beta, cutoff_freq=c, kernel_sizes=kernel_sizes, strides=strides,
                                    channels=channels, norm=norm, in_channels=in_channels)
            for p, c in zip(periods, cutoff_freqs, strict=False)
        )

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        outputs = [critic(x) for critic in self.discriminators]
        return [o[0] for o in outputs], [o[1] for o in outputs]


class HILDiscriminator(nn.Module):
    """STFT and filter-bank critics; ``loss(reals, fakes) -> (discriminator, adversarial, feature matching)``.

    The two critic sets come built (the ``hil`` builder in :mod:`.discriminators` makes the EnCodec
    :class:`~.discriminators.MultiScaleSTFTDiscriminator` and the :class:`MultiFilterBankDiscriminator`
    from the one option set), so this module does not depend on the registry module.
    """

    def __init__(self, stft_discriminators: nn.Module, fb_discriminators: MultiFilterBankDiscriminator,
                 normalize_losses: bool = False, loss_type: str = "rpgan", sample_rate: int = 44100):
        super().__init__()
        if loss_type not in GAN_OBJECTIVES:
            raise ValueError(f"loss_type must be one of {', '.join(GAN_OBJECTIVES)}; got {loss_type!r}")
        self.stft_discriminators = stft_discriminators
        self.fb_discriminators = fb_discriminators
        self.normalize_losses = normalize_losses
        self.loss_type = loss_type
        self.sample_rate = sample_rate

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, features = self.stft_discriminators(x)
        fb_logits, fb_features = self.fb_discriminators(x)
        return logits + fb_logits, features + fb_features

    def loss(self, reals: torch.Tensor, fakes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits_real, features_real = self(reals)
        logits_fake, features_fake = self(fakes)
        return multi_critic_losses(logits_real, logits_fake, features_real, features_fake, self.loss_type,
                                   self.normalize_losses)


# the options MultiFilterBankDiscriminator takes (the hil builder routes these to it)
FILTER_BANK_OPTIONS = frozenset(
    ("periods", "taps", "beta", "cutoff_freqs", "kernel_sizes", "strides", "channels", "norm", "in_channels"))
