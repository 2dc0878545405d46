"""The ``oobleck`` discriminator: waveform multi-scale (x3) plus multi-period ([2, 3, 5, 7, 11]) conv critics.

Parameter names follow stable-audio-tools 0.0.20 so its training checkpoints load:
``multi_discriminator.discriminators.0.layers.{scale}.net.{i}.*`` (multi-scale, Conv1d) and
``multi_discriminator.discriminators.1.layers.{period}.net.{i}.*`` (multi-period, Conv2d). Each critic is
``n_layers`` weight-normed convs (``weight_g``/``weight_v``/``bias``, legacy weight norm) at even indices
of ``net`` with SiLU between them, then a plain 1x1 conv; the score of an input is the mean of the last
conv's output, summed over all critics. An int ``kernel_size`` on the 2-D critics is square (15x15 with
stride 4 on both axes), exactly as upstream builds it.

Losses (``loss(reals, fakes)``): hinge on the summed scores; feature matching is the sum over every
feature map (each conv's output, logits included) of the mean absolute real-fake difference.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.models.gan_losses import hinge_losses

PERIODS = (2, 3, 5, 7, 11)
N_SCALES = 3


def _weight_norm(module: nn.Module) -> nn.Module:
    # Legacy weight norm: it is what yields the weight_g / weight_v keys upstream checkpoints hold.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(module)


class ConvCritic(nn.Module):
    """One critic: ``forward(x) -> (score per item, [each conv's output])``."""

    def __init__(self, in_channels: int, conv: type[nn.Conv1d] | type[nn.Conv2d], capacity: int = 32,
                 n_layers: int = 4, kernel_size: int = 15, stride: int = 4):
        super().__init__()
        widths = [in_channels] + [capacity * 2**i for i in range(n_layers)]
        layers: list[nn.Module] = []
        for i in range(n_layers):
            layers.append(_weight_norm(conv(widths[i], widths[i + 1], kernel_size, stride=stride,
                                            padding=kernel_size // 2)))
            layers.append(nn.SiLU())
        layers.append(conv(widths[-1], 1, 1))
        self.net = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for layer in self.net:
            x = layer(x)
            if not isinstance(layer, nn.SiLU):
                features.append(x)
        return x.reshape(x.shape[0], -1).mean(-1), features


class MultiScaleCritics(nn.Module):
    """Conv1d critics on the waveform, halved in rate (average pooling) before each next scale."""

    def __init__(self, in_channels: int, n_scales: int = N_SCALES):
        super().__init__()
        self.layers = nn.ModuleList(ConvCritic(in_channels, nn.Conv1d) for _ in range(n_scales))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        score, features = 0.0, []
        for critic in self.layers:
            s, f = critic(x)
            score, features = score + s, features + f
            x = F.avg_pool1d(x, 2)
        return score, features


class MultiPeriodCritics(nn.Module):
    """Conv2d critics on the waveform folded into ``(length / period, period)`` (zero-padded on the right)."""

    def __init__(self, in_channels: int, periods: Sequence[int] = PERIODS):
        super().__init__()
        self.periods = tuple(periods)
        self.layers = nn.ModuleList(ConvCritic(in_channels, nn.Conv2d) for _ in self.periods)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        score, features = 0.0, []
        for critic, period in zip(self.layers, self.periods, strict=True):
            folded = F.pad(x, (0, (-x.shape[-1]) % period))
            s, f = critic(folded.reshape(*folded.shape[:2], -1, period))
            score, features = score + s, features + f
        return score, features


class CriticGroup(nn.Module):
    """Holds the critic families at ``.discriminators`` (the checkpoint's name for this level)."""

    def __init__(self, families: Sequence[nn.Module]):
        super().__init__()
        self.discriminators = nn.ModuleList(families)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        score, features = 0.0, []
        for family in self.discriminators:
            s, f = family(x)
            score, features = score + s, features + f
        return score, features


class OobleckDiscriminator(nn.Module):
    """Multi-scale + multi-period waveform critics with hinge losses.

    Reals and fakes go through the critics as one batch (as upstream does), so a critic sees both in
    the same forward pass.
    """

    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.multi_discriminator = CriticGroup(
            [MultiScaleCritics(in_channels), MultiPeriodCritics(in_channels)]
        )

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.multi_discriminator(audio)

    def loss(self, reals: torch.Tensor, fakes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(discriminator loss, adversarial generator loss, feature-matching distance)."""
        scores, features = self(torch.cat([reals, fakes], 0))
        score_real, score_fake = scores.chunk(2, 0)
        dis_loss, adv_loss = hinge_losses(score_real, score_fake)
        fm = reals.new_zeros(())
        for feature in features:
            real, fake = feature.chunk(2, 0)
            fm = fm + (real - fake).abs().mean()
        return dis_loss, adv_loss, fm
