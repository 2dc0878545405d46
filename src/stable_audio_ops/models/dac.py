"""``dac`` encoder/decoder: the convolutional codec of descript-audio-codec (DAC), re-implemented.

stable-audio-tools wraps DAC's ``Encoder``/``Decoder`` (``dac.model.dac``). Installing that package
pulls descript-audiotools and ~35 other packages (tensorboard, an old protobuf, a torchaudio that does
not match our torch), so the two networks are re-implemented here with the same module attribute names,
so DAC-based stable-audio-tools checkpoints load unchanged:

encoder.encoder.block = [WNConv k7] + [EncoderBlock per stride] + [Snake1d, WNConv k3 -> enc_dim]
    EncoderBlock.block = [ResidualUnit d=1, 3, 9 (at dim/2), Snake1d, WNConv k=2*stride, stride -> dim]
encoder.proj_out = plain 1x1 Conv1d enc_dim -> latent_dim (Identity when latent_dim is unset)
decoder.decoder.model = [WNConv k7] + [DecoderBlock per rate] + [Snake1d, WNConv k7, Tanh]
    DecoderBlock.block = [Snake1d, WNConvTranspose k=2*rate, ResidualUnit d=1, 3, 9]
ResidualUnit.block = [Snake1d, WNConv k7 dilated, Snake1d, WNConv k1]; output = x + block(x)

Differences from Oobleck: DAC's Snake has a single ``alpha`` of shape ``(1, C, 1)`` (no beta, not
log-scaled), residual units of an encoder block run at half the block's width, the decoder's last conv
has a bias, and the decoder always ends in ``tanh``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.blocks import wn_conv1d, wn_conv_transpose1d
from stable_audio_ops.models.oobleck import positive_ints

# Added to alpha before taking the reciprocal (DAC's constant; keeps alpha -> 0 finite).
SNAKE1D_EPS = 1e-9


class Snake1d(nn.Module):
    """``x + sin(alpha * x)^2 / (alpha + eps)`` with one learned ``alpha`` per channel (init 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (self.alpha + SNAKE1D_EPS).reciprocal() * torch.sin(self.alpha * x).pow(2)


class ResidualUnit(nn.Module):
    """Dilated k7 + 1x1 convolutions with a skip; the input is centre-cropped if the branch is shorter."""

    def __init__(self, dim: int, dilation: int):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(dim),
            wn_conv1d(dim, dim, kernel_size=7, dilation=dilation, padding=3 * dilation),
            Snake1d(dim),
            wn_conv1d(dim, dim, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        crop = (x.shape[-1] - y.shape[-1]) // 2
        if crop > 0:
            x = x[..., crop:-crop]
        return x + y


def _residual_units(dim: int) -> list[nn.Module]:
    return [ResidualUnit(dim, dilation=d) for d in (1, 3, 9)]


class EncoderBlock(nn.Module):
    """Residual units at ``dim // 2`` channels, then a strided conv to ``dim`` (downsample by ``stride``)."""

    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            *_residual_units(dim // 2),
            Snake1d(dim // 2),
            wn_conv1d(dim // 2, dim, kernel_size=2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DecoderBlock(nn.Module):
    """Upsample ``in_dim -> out_dim`` by ``stride`` with a transposed conv, then three residual units."""

    def __init__(self, in_dim: int, out_dim: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(in_dim),
            wn_conv_transpose1d(in_dim, out_dim, kernel_size=2 * stride, stride=stride,
                                padding=math.ceil(stride / 2)),
            *_residual_units(out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DACEncoderNet(nn.Module):
    """DAC's encoder proper (``encoder.encoder``): width doubles at every stride, ends at ``enc_dim``.

    ``d_latent`` is the last conv's width: stable-audio-tools' wrapper keeps ``enc_dim`` (the default);
    descript's own ``DAC`` model (the ``dac_pretrained`` pretransform) sets it to its ``latent_dim``."""

    def __init__(self, in_channels: int, d_model: int, strides: Sequence[int], d_latent: int | None = None):
        super().__init__()
        layers: list[nn.Module] = [wn_conv1d(in_channels, d_model, kernel_size=7, padding=3)]
        dim = d_model
        for stride in strides:
            dim *= 2
            layers.append(EncoderBlock(dim, stride))
        layers += [Snake1d(dim), wn_conv1d(dim, d_latent or dim, kernel_size=3, padding=1)]
        self.block = nn.Sequential(*layers)
        self.enc_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DACEncoder(nn.Module):
    """Audio ``[B, in_channels, T]`` -> ``[B, latent_dim, T / prod(strides)]`` (stable-audio-tools' wrapper).

    ``latent_dim`` None keeps DAC's own output width ``d_model * 2**len(strides)`` (no ``proj_out`` weights).
    """

    def __init__(self, in_channels: int = 1, latent_dim: int | None = None, d_model: int = 64,
                 strides: Sequence[int] = (2, 4, 8, 8)):
        super().__init__()
        self.encoder = DACEncoderNet(in_channels, d_model, strides)
        self.proj_out: nn.Module = (nn.Conv1d(self.encoder.enc_dim, latent_dim, kernel_size=1)
                                    if latent_dim is not None else nn.Identity())
        self.in_channels = in_channels
        self.latent_dim = latent_dim if latent_dim is not None else self.encoder.enc_dim
        self.strides = list(strides)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_out(self.encoder(x))


class DACDecoderNet(nn.Module):
    """DAC's decoder proper (``decoder.decoder``): width halves at every rate, ends in ``tanh``."""

    def __init__(self, latent_dim: int, channels: int, rates: Sequence[int], out_channels: int):
        super().__init__()
        layers: list[nn.Module] = [wn_conv1d(latent_dim, channels, kernel_size=7, padding=3)]
        for i, rate in enumerate(rates):
            layers.append(DecoderBlock(channels // 2**i, channels // 2 ** (i + 1), rate))
        out_dim = channels // 2 ** len(rates)
        layers += [Snake1d(out_dim), wn_conv1d(out_dim, out_channels, kernel_size=7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class DACDecoder(nn.Module):
    """Latents ``[B, latent_dim, L]`` -> audio ``[B, out_channels, L * prod(rates)]``."""

    def __init__(self, latent_dim: int, out_channels: int = 1, channels: int = 1536,
                 rates: Sequence[int] = (8, 8, 4, 2)):
        super().__init__()
        self.decoder = DACDecoderNet(latent_dim, channels, rates, out_channels)
        self.latent_dim = latent_dim
        self.out_channels = out_channels
        self.strides = list(rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(x)


# --- builders (config node of an ``encoder`` / ``decoder`` object -> module) ----------------------------

def build_dac_encoder(node: ConfigNode) -> DACEncoder:
    cfg = node.child("config", {})
    check_known_keys(cfg, ("in_channels", "latent_dim", "d_model", "strides"))
    return DACEncoder(
        in_channels=cfg.get("in_channels", "a positive int", 1),
        latent_dim=cfg.get("latent_dim", "a positive int", None),
        d_model=cfg.get("d_model", "a positive int", 64),
        strides=positive_ints(cfg, "strides", [2, 4, 8, 8]),
    )


def build_dac_decoder(node: ConfigNode) -> DACDecoder:
    cfg = node.child("config", {})
    check_known_keys(cfg, ("latent_dim", "out_channels", "channels", "rates"))
    channels = cfg.get("channels", "a positive int", 1536)
    rates = positive_ints(cfg, "rates", [8, 8, 4, 2])
    if channels % 2 ** len(rates):
        raise cfg.error(f"channels {channels} must be divisible by 2**len(rates) = {2 ** len(rates)} "
                        "(the width halves at every rate)", "channels")
    return DACDecoder(
        latent_dim=cfg.get("latent_dim", "a positive int"),
        out_channels=cfg.get("out_channels", "a positive int", 1),
        channels=channels,
        rates=rates,
    )
