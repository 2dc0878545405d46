"""The ``big_vgan`` discriminator: DAC's multi-period critics plus BigVGAN's multi-scale sub-band CQT critics.

Parameter names follow stable-audio-tools 0.0.20: ``mpd.discriminator.discriminators.{i}.*`` (a DAC
discriminator with only periods) and ``cqt.discriminators.{scale}.*`` with ``conv_pres.{octave}`` (plain
per-octave convs), ``convs.0`` (plain), ``convs.{1..}`` and ``conv_post`` (legacy weight norm),
``resample.kernel`` (2x upsampling filter) and the CQT's buffers under ``cqt_transform``.

Upstream names ``DiscriminatorCQT`` without defining or importing it, so 0.0.20 cannot build this type
(NameError); the critic here is BigVGAN's, which upstream's ``cqtd_*`` options and defaults describe.
Each scale upsamples audio 2x, takes a complex CQT (``cqtd_n_octaves`` x ``cqtd_bins_per_octaves``,
hop ``cqtd_hop_lengths``), runs one conv per octave, joins the octaves, and applies a 2-D conv stack
(LeakyReLU 0.1) striding over frequency. BigVGAN's CQT takes mono only; here each audio channel gets
its CQT and the real parts of all channels come first, then the imaginary parts.

``fmin`` (lowest CQT bin, 32.7 Hz) is honoured; upstream stores it as ``cqtd_fmin`` and BigVGAN's critic
ignores it, which only matters for configs that change it.

Losses: LSGAN on every scale's logits, feature matching as L1 divided by the mean magnitude of the
real feature map (both averaged), added to the MPD's DAC losses.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from stable_audio_ops.models.cqt import ConstantQ
from stable_audio_ops.models.dac_discriminator import PERIODS, DACGANLoss
from stable_audio_ops.models.resample import SincResample

CQTD_DEFAULTS = {
    "cqtd_filters": 32,
    "cqtd_max_filters": 1024,
    "cqtd_filters_scale": 1,
    "cqtd_dilations": [1, 2, 4],
    "cqtd_in_channels": 1,
    "cqtd_out_channels": 1,
    "cqtd_hop_lengths": [512, 256, 256],
    "cqtd_n_octaves": [9, 9, 9],
    "cqtd_bins_per_octaves": [24, 36, 48],
    "cqtd_normalize_volume": False,
    "fmin": 32.7,
}


def _same(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    return (kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2


def _wn(conv: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(conv)


class DiscriminatorCQT(nn.Module):
    """One scale: ``forward(audio) -> (logits, feature maps)``."""

    def __init__(self, cfg: dict, hop_length: int, n_octaves: int, bins_per_octave: int, sample_rate: int):
        super().__init__()
        kernel, stride = (3, 9), (1, 2)
        filters, max_filters, scale = cfg["cqtd_filters"], cfg["cqtd_max_filters"], cfg["cqtd_filters_scale"]
        self.in_channels = cfg["cqtd_in_channels"]
        self.n_octaves = n_octaves
        self.bins_per_octave = bins_per_octave
        self.normalize_volume = cfg["cqtd_normalize_volume"]
        self.cqt_transform = ConstantQ(sample_rate * 2, hop_length, n_octaves, bins_per_octave, fmin=cfg["fmin"])
        pair = 2 * self.in_channels
        self.conv_pres = nn.ModuleList(
            nn.Conv2d(pair, pair, kernel, padding=_same(kernel)) for _ in range(n_octaves)
        )
        self.convs = nn.ModuleList([nn.Conv2d(pair, filters, kernel, padding=_same(kernel))])
        channels = min(scale * filters, max_filters)
        for i, dilation in enumerate(cfg["cqtd_dilations"]):
            out = min(scale ** (i + 1) * filters, max_filters)
            self.convs.append(_wn(nn.Conv2d(channels, out, kernel, stride=stride, dilation=(dilation, 1),
                                            padding=_same(kernel, (dilation, 1)))))
            channels = out
        out = min(scale ** (len(cfg["cqtd_dilations"]) + 1) * filters, max_filters)
        square = (kernel[0], kernel[0])
        self.convs.append(_wn(nn.Conv2d(channels, out, square, padding=_same(square))))
        self.conv_post = _wn(nn.Conv2d(out, cfg["cqtd_out_channels"], square, padding=_same(square)))
        self.resample = SincResample(sample_rate, sample_rate * 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.normalize_volume:
            x = x - x.mean(dim=-1, keepdim=True)
            x = 0.8 * x / (x.abs().amax(dim=-1, keepdim=True) + 1e-9)
        x = self.resample(x)
        batch, channels = x.shape[:2]
        z = self.cqt_transform(x.reshape(batch * channels, 1, -1).float())  # (B*C, bins, frames, 2)
        z = z.reshape(batch, channels, *z.shape[1:]).movedim(-1, 1).flatten(1, 2)  # (B, [re..., im...], bins, T)
        z = z.transpose(-1, -2)  # (B, 2C, frames, bins)
        width = self.bins_per_octave
        z = torch.cat([conv(z[..., i * width : (i + 1) * width]) for i, conv in enumerate(self.conv_pres)], -1)
        fmap = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), 0.1)
            fmap.append(z)
        return self.conv_post(z), fmap


class MultiScaleSubbandCQTDiscriminator(nn.Module):
    """One :class:`DiscriminatorCQT` per (hop, octaves, bins per octave) triple, with BigVGAN's losses."""

    def __init__(self, cfg: dict, sample_rate: int):
        super().__init__()
        self.cfg = {**CQTD_DEFAULTS, **cfg}
        lists = [self.cfg[k] for k in ("cqtd_hop_lengths", "cqtd_n_octaves", "cqtd_bins_per_octaves")]
        if len({len(v) for v in lists}) != 1:
            raise ValueError("cqtd_hop_lengths, cqtd_n_octaves and cqtd_bins_per_octaves must have equal lengths")
        self.discriminators = nn.ModuleList(
            DiscriminatorCQT(self.cfg, hop, octaves, bins, sample_rate) for hop, octaves, bins in zip(*lists, strict=True)
        )

    def run(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        if torch.is_grad_enabled():  # recomputed in backward to bound memory, as upstream does
            return [checkpoint(d, audio, use_reentrant=False) for d in self.discriminators]
        return [d(audio) for d in self.discriminators]

    def loss(self, reals: torch.Tensor, fakes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(LSGAN discriminator loss, LSGAN generator loss, relative feature matching), averaged over scales."""
        real_out, fake_out = self.run(reals), self.run(fakes)
        gen = sum(((1 - logits) ** 2).mean() for logits, _ in fake_out) / len(fake_out)
        ratios = [
            F.l1_loss(f, r.detach()) / r.abs().mean().detach()
            for (_, rmaps), (_, fmaps) in zip(real_out, fake_out, strict=True)
            for r, f in zip(rmaps, fmaps, strict=True)
        ]
        detached = self.run(fakes.detach())
        dis = sum(
            (f ** 2).mean() + ((1 - r) ** 2).mean() for (r, _), (f, _) in zip(real_out, detached, strict=True)
        ) / len(detached)
        return dis, gen, sum(ratios) / len(ratios)


class BigVGANDiscriminator(nn.Module):
    """DAC MPD (``.mpd``) plus the sub-band CQT critics (``.cqt``); losses are the sums of both."""

    def __init__(self, sample_rate: int, channels: int = 1, use_hinge: bool = False,
                 periods: Sequence[int] = PERIODS, **cqt_kwargs):
        super().__init__()
        self.mpd = DACGANLoss(use_hinge=use_hinge, sample_rate=sample_rate, periods=periods, rates=[],
                              fft_sizes=[], channels=channels)
        self.cqt = MultiScaleSubbandCQTDiscriminator({"cqtd_in_channels": channels, **cqt_kwargs}, sample_rate)

    def loss(self, reals: torch.Tensor, fakes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cqt_losses = self.cqt.loss(reals, fakes)
        mpd_losses = self.mpd.loss(reals, fakes)
        return tuple(a + b for a, b in zip(mpd_losses, cqt_losses, strict=True))
