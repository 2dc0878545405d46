"""Oobleck encoder/decoder: the convolutional audio autoencoder of Stable Audio Open.

Layout (module attribute names fix the state-dict keys, which match stable-audio-tools):

encoder.layers = [WNConv k7] + [EncoderBlock per stride] + [activation, WNConv k3 -> latent]
    EncoderBlock.layers = [ResidualUnit d=1, d=3, d=9, activation, WNConv k=2*stride, stride]
decoder.layers = [WNConv k7] + [DecoderBlock per stride, deepest first] + [activation, WNConv k7 (no bias), tanh?]
    DecoderBlock.layers = [activation, upsample (WNConvTranspose or nearest+WNConv), ResidualUnit d=1, 3, 9]
ResidualUnit.layers = [activation, WNConv k7 dilated, activation, WNConv k1], output = x + layers(x)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.blocks import make_activation, wn_conv1d, wn_conv_transpose1d


def _act(use_snake: bool) -> str:
    return "snake" if use_snake else "elu"


class ResidualUnit(nn.Module):
    """Dilated k7 conv + 1x1 conv with a skip connection; 'same' length output.

    In training mode the inner stack runs under (non-reentrant) gradient checkpointing, like
    upstream: activations of the wide, full-rate layers dominate memory. Recomputing them costs about a
    fifth of a training step on CPU, so small models that fit in memory turn it off
    (``set_residual_checkpointing``, the autoencoder training key ``gradient_checkpointing``).
    """

    checkpoint_activations = True

    def __init__(self, in_channels: int, out_channels: int, dilation: int, use_snake: bool = False):
        super().__init__()
        self.dilation = dilation
        padding = dilation * (7 - 1) // 2
        self.layers = nn.Sequential(
            make_activation(_act(use_snake), out_channels),
            wn_conv1d(in_channels, out_channels, kernel_size=7, dilation=dilation, padding=padding),
            make_activation(_act(use_snake), out_channels),
            wn_conv1d(out_channels, out_channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checkpoint_activations and self.training and torch.is_grad_enabled():
            y = checkpoint(self.layers, x, use_reentrant=False)
        else:
            y = self.layers(x)
        return x + y


def set_residual_checkpointing(model: nn.Module, enabled: bool) -> int:
    """Switch gradient checkpointing of every Oobleck residual unit in ``model``; returns how many.

    Gradients are the same either way (the recomputation is deterministic); only the memory/time trade
    changes. Measured on the ae_step workload (benchmarks/bench_ae_step.py): off saves ~20 % of a step.
    """
    units = [m for m in model.modules() if isinstance(m, ResidualUnit)]
    for unit in units:
        unit.checkpoint_activations = enabled
    return len(units)


class EncoderBlock(nn.Module):
    """Three residual units at ``in_channels``, then a strided conv that downsamples by ``stride``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool = False,
                 antialias_activation: bool = False):
        super().__init__()
        self.layers = nn.Sequential(
            ResidualUnit(in_channels, in_channels, dilation=1, use_snake=use_snake),
            ResidualUnit(in_channels, in_channels, dilation=3, use_snake=use_snake),
            ResidualUnit(in_channels, in_channels, dilation=9, use_snake=use_snake),
            make_activation(_act(use_snake), in_channels, antialias=antialias_activation),
            wn_conv1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride,
                      padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _upsampler(in_channels: int, out_channels: int, stride: int, use_nearest_upsample: bool) -> nn.Module:
    if use_nearest_upsample:
        # Nearest upsample + 'same' conv avoids the checkerboard artefacts of transposed convs.
        return nn.Sequential(
            nn.Upsample(scale_factor=stride, mode="nearest"),
            wn_conv1d(in_channels, out_channels, kernel_size=2 * stride, stride=1, bias=False, padding="same"),
        )
    return wn_conv_transpose1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride,
                               padding=math.ceil(stride / 2))


class DecoderBlock(nn.Module):
    """Activation, upsample by ``stride`` to ``out_channels``, then three residual units."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool = False,
                 antialias_activation: bool = False, use_nearest_upsample: bool = False):
        super().__init__()
        self.layers = nn.Sequential(
            make_activation(_act(use_snake), in_channels, antialias=antialias_activation),
            _upsampler(in_channels, out_channels, stride, use_nearest_upsample),
            ResidualUnit(out_channels, out_channels, dilation=1, use_snake=use_snake),
            ResidualUnit(out_channels, out_channels, dilation=3, use_snake=use_snake),
            ResidualUnit(out_channels, out_channels, dilation=9, use_snake=use_snake),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _check_stages(c_mults: Sequence[int], strides: Sequence[int]) -> None:
    if len(c_mults) != len(strides):
        raise ValueError(f"c_mults {list(c_mults)} and strides {list(strides)} must have the same length")
    if not c_mults:
        raise ValueError("c_mults must not be empty")


class OobleckEncoder(nn.Module):
    """Audio ``[B, in_channels, T]`` -> latents ``[B, latent_dim, T / prod(strides)]``.

    For a VAE bottleneck ``latent_dim`` is twice the model latent size (mean and scale).
    """

    def __init__(self, in_channels: int = 2, channels: int = 128, latent_dim: int = 32,
                 c_mults: Sequence[int] = (1, 2, 4, 8), strides: Sequence[int] = (2, 4, 8, 8),
                 use_snake: bool = False, antialias_activation: bool = False):
        super().__init__()
        _check_stages(c_mults, strides)
        self.in_channels = in_channels
        self.latent_dim = latent_dim
        self.strides = list(strides)
        dims = [channels * m for m in [1, *c_mults]]
        layers: list[nn.Module] = [wn_conv1d(in_channels, dims[0], kernel_size=7, padding=3)]
        for i, stride in enumerate(strides):
            # Upstream does not forward antialias_activation into the blocks, only to the final activation.
            layers.append(EncoderBlock(dims[i], dims[i + 1], stride=stride, use_snake=use_snake))
        layers += [
            make_activation(_act(use_snake), dims[-1], antialias=antialias_activation),
            wn_conv1d(dims[-1], latent_dim, kernel_size=3, padding=1),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckDecoder(nn.Module):
    """Latents ``[B, latent_dim, L]`` -> audio ``[B, out_channels, L * prod(strides)]``."""

    def __init__(self, out_channels: int = 2, channels: int = 128, latent_dim: int = 32,
                 c_mults: Sequence[int] = (1, 2, 4, 8), strides: Sequence[int] = (2, 4, 8, 8),
                 use_snake: bool = False, antialias_activation: bool = False,
                 use_nearest_upsample: bool = False, final_tanh: bool = True):
        super().__init__()
        _check_stages(c_mults, strides)
        self.out_channels = out_channels
        self.latent_dim = latent_dim
        self.strides = list(strides)
        dims = [channels * m for m in [1, *c_mults]]
        layers: list[nn.Module] = [wn_conv1d(latent_dim, dims[-1], kernel_size=7, padding=3)]
        for i in range(len(strides), 0, -1):
            layers.append(DecoderBlock(dims[i], dims[i - 1], stride=strides[i - 1], use_snake=use_snake,
                                       antialias_activation=antialias_activation,
                                       use_nearest_upsample=use_nearest_upsample))
        layers += [
            make_activation(_act(use_snake), dims[0], antialias=antialias_activation),
            wn_conv1d(dims[0], out_channels, kernel_size=7, padding=3, bias=False),
            nn.Tanh() if final_tanh else nn.Identity(),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


# --- builders (config node of an ``encoder`` / ``decoder`` object -> module) ----------------------------

def positive_ints(node: ConfigNode, key: str, default: list[int]) -> list[int]:
    """A non-empty list of positive ints at ``key`` (strides, channel multipliers), or a keyed error."""
    values = node.get(key, "a list of ints", default)
    if not values or any(v <= 0 for v in values):
        raise node.error(f"expected a non-empty list of positive ints, got {values!r}", key)
    return list(values)


def _antialias(node: ConfigNode) -> bool:
    """``antialias_activation``: 0.0.20 wraps the encoder's last activation, and each decoder block's activation
    before upsampling and the decoder's last one, in ``alias_free_torch.Activation1d`` (models/antialias.py)."""
    return node.get("antialias_activation", "a bool", False)


def _oobleck_stages(cfg: ConfigNode) -> tuple[list[int], list[int]]:
    c_mults = positive_ints(cfg, "c_mults", [1, 2, 4, 8])
    strides = positive_ints(cfg, "strides", [2, 4, 8, 8])
    if len(c_mults) != len(strides):
        raise cfg.error(f"c_mults has {len(c_mults)} entries but strides has {len(strides)}; they must match",
                        "strides")
    return c_mults, strides


_OOBLECK_ENCODER_KEYS = ("in_channels", "channels", "latent_dim", "c_mults", "strides", "use_snake",
                         "antialias_activation")
_OOBLECK_DECODER_KEYS = ("out_channels", "channels", "latent_dim", "c_mults", "strides", "use_snake",
                         "antialias_activation", "use_nearest_upsample", "final_tanh")


def build_oobleck_encoder(node: ConfigNode) -> OobleckEncoder:
    cfg = node.child("config", {})
    check_known_keys(cfg, _OOBLECK_ENCODER_KEYS)
    c_mults, strides = _oobleck_stages(cfg)
    return OobleckEncoder(
        in_channels=cfg.get("in_channels", "a positive int", 2),
        channels=cfg.get("channels", "a positive int", 128),
        latent_dim=cfg.get("latent_dim", "a positive int", 32),
        c_mults=c_mults,
        strides=strides,
        use_snake=cfg.get("use_snake", "a bool", False),
        antialias_activation=_antialias(cfg),
    )


def build_oobleck_decoder(node: ConfigNode) -> OobleckDecoder:
    cfg = node.child("config", {})
    check_known_keys(cfg, _OOBLECK_DECODER_KEYS)
    c_mults, strides = _oobleck_stages(cfg)
    use_nearest_upsample = cfg.get("use_nearest_upsample", "a bool", False)
    if not use_nearest_upsample and any(s % 2 for s in strides):
        # padding ceil(s/2) on a k=2s transposed conv yields L*s - 1 samples for odd s (upstream layout),
        # which breaks reconstruction lengths and chunked decoding.
        raise cfg.error(f"odd strides {strides} need use_nearest_upsample=true (transposed convolutions "
                        "with odd strides return one sample too few)", "strides")
    return OobleckDecoder(
        out_channels=cfg.get("out_channels", "a positive int", 2),
        channels=cfg.get("channels", "a positive int", 128),
        latent_dim=cfg.get("latent_dim", "a positive int", 32),
        c_mults=c_mults,
        strides=strides,
        use_snake=cfg.get("use_snake", "a bool", False),
        antialias_activation=_antialias(cfg),
        use_nearest_upsample=use_nearest_upsample,
        final_tanh=cfg.get("final_tanh", "a bool", True),
    )
