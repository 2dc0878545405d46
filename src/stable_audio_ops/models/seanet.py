"""``seanet`` encoder/decoder: EnCodec's SEANet networks, re-implemented with encodec's module names.

stable-audio-tools builds ``encodec.modules.SEANetEncoder/SEANetDecoder`` from the config's keyword
arguments. The encodec wheel would pull a torchaudio that does not match our torch, so the networks are
written here with the same attribute names (state-dict keys ``encoder.model.<i>.conv.conv.weight_g``,
``...block.<j>.conv.conv.*``, ``...shortcut.conv.conv.*``, ``...convtr.convtr.*``, ``...lstm.*``), so
SEANet checkpoints of stable-audio-tools load unchanged.

Every convolution pads itself ('same'-style, asymmetric for odd totals, reflect by default) so that
the output length is exactly ``ceil(T / stride)``; transposed convolutions trim their overhang.

Ratios: upstream's factory reverses the encoder's ``ratios`` *in place in the config dict* and
SEANetEncoder reverses them again, so the encoder downsamples in config order (and building twice from
one dict object gives a different model there). Here the config is never mutated: the encoder
downsamples in the order its config lists, the decoder upsamples in its config order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.blocks import weight_norm
from stable_audio_ops.models.oobleck import positive_ints

NORMS = ("none", "weight_norm", "spectral_norm", "time_group_norm", "layer_norm")


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over channels of a ``[B, C, T]`` tensor (encodec's ``layer_norm`` conv norm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, -1)).transpose(1, -1)


def _normed(conv: nn.Module, norm: str, norm_params: dict[str, Any], causal: bool) -> tuple[nn.Module, nn.Module]:
    """(conv with its weight re-parametrisation, the norm module applied after it)."""
    if norm == "weight_norm":
        conv = weight_norm(conv)
    elif norm == "spectral_norm":
        conv = torch.nn.utils.spectral_norm(conv)
    if norm == "layer_norm":
        return conv, ChannelLayerNorm(conv.out_channels, **norm_params)
    if norm == "time_group_norm":
        if causal:
            raise ValueError("norm 'time_group_norm' cannot be causal (it normalises over the whole time axis)")
        return conv, nn.GroupNorm(1, conv.out_channels, **norm_params)
    return conv, nn.Identity()


class NormConv1d(nn.Module):
    """``conv`` then ``norm``: the attribute layout encodec checkpoints use."""

    def __init__(self, *args, causal: bool = False, norm: str = "none", norm_params: dict | None = None,
                 **kwargs):
        super().__init__()
        self.conv, self.norm = _normed(nn.Conv1d(*args, **kwargs), norm, norm_params or {}, causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class NormConvTranspose1d(nn.Module):
    def __init__(self, *args, causal: bool = False, norm: str = "none", norm_params: dict | None = None,
                 **kwargs):
        super().__init__()
        self.convtr, self.norm = _normed(nn.ConvTranspose1d(*args, **kwargs), norm, norm_params or {}, causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.convtr(x))


def _pad(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """``F.pad`` that also reflects inputs shorter than the padding (zero-extends first, then trims)."""
    if mode != "reflect":
        return F.pad(x, (left, right), mode)
    extra = max(0, max(left, right) - x.shape[-1] + 1)
    if extra:
        x = F.pad(x, (0, extra))
    padded = F.pad(x, (left, right), "reflect")
    return padded[..., : padded.shape[-1] - extra]


class SConv1d(nn.Module):
    """Conv1d that pads so every input sample is covered and the output has ``ceil(T / stride)`` frames.

    Non-causal: the total padding ``k_eff - stride`` is split with the extra sample on the left, plus
    right padding to complete the last window; causal: all of it on the left.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, causal: bool = False, norm: str = "none",
                 norm_params: dict | None = None, pad_mode: str = "reflect"):
        super().__init__()
        self.conv = NormConv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation,
                               causal=causal, norm=norm, norm_params=norm_params)
        self.causal = causal
        self.pad_mode = pad_mode
        self.effective_kernel = (kernel_size - 1) * dilation + 1
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, length = self.effective_kernel, self.stride, x.shape[-1]
        total = k - s
        frames = (length - k + total) / s + 1
        extra = (math.ceil(frames) - 1) * s + (k - total) - length
        if self.causal:
            return self.conv(_pad(x, total, extra, self.pad_mode))
        right = total // 2
        return self.conv(_pad(x, total - right, right + extra, self.pad_mode))


class SConvTranspose1d(nn.Module):
    """Transposed conv that trims its ``kernel - stride`` overhang (``trim_right_ratio`` of it on the right
    when causal, the larger half on the left otherwise), so the output is ``T * stride`` long."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 causal: bool = False, norm: str = "none", norm_params: dict | None = None,
                 trim_right_ratio: float = 1.0):
        super().__init__()
        if not causal and trim_right_ratio != 1.0:
            raise ValueError("trim_right_ratio != 1.0 only makes sense for causal convolutions")
        if not 0.0 <= trim_right_ratio <= 1.0:
            raise ValueError(f"trim_right_ratio must be in [0, 1], got {trim_right_ratio}")
        self.convtr = NormConvTranspose1d(in_channels, out_channels, kernel_size, stride, causal=causal,
                                          norm=norm, norm_params=norm_params)
        self.causal = causal
        self.trim_right_ratio = trim_right_ratio
        self.overhang = kernel_size - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convtr(x)
        right = math.ceil(self.overhang * self.trim_right_ratio) if self.causal else self.overhang // 2
        left = self.overhang - right
        return y[..., left : y.shape[-1] - right]


class SLSTM(nn.Module):
    """Multi-layer LSTM over time on a ``[B, C, T]`` tensor, with a skip: ``lstm(x) + x``."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.permute(2, 0, 1)
        y, _ = self.lstm(seq)
        return (y + seq).permute(1, 2, 0)


def _activation(name: str, params: dict[str, Any]) -> nn.Module:
    cls = getattr(nn, name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"unknown activation {name!r}: expected a torch.nn module name such as 'ELU'")
    return cls(**params)


class SEANetResnetBlock(nn.Module):
    """Bottlenecked residual block: ``shortcut(x) + block(x)``, the branch narrowed by ``compress``.

    ``true_skip`` false (SEANet's default) makes the shortcut a 1x1 convolution with its own weights.
    """

    def __init__(self, dim: int, kernel_sizes: Sequence[int], dilations: Sequence[int], act: dict[str, Any],
                 conv: dict[str, Any], compress: int, true_skip: bool):
        super().__init__()
        hidden = dim // compress
        layers: list[nn.Module] = []
        last = len(kernel_sizes) - 1
        for i, (kernel, dilation) in enumerate(zip(kernel_sizes, dilations, strict=True)):
            layers += [_activation(**act),
                       SConv1d(dim if i == 0 else hidden, dim if i == last else hidden, kernel,
                               dilation=dilation, **conv)]
        self.block = nn.Sequential(*layers)
        self.shortcut: nn.Module = nn.Identity() if true_skip else SConv1d(dim, dim, 1, **conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


def _resnet_blocks(dim: int, opts: dict[str, Any]) -> list[nn.Module]:
    return [SEANetResnetBlock(dim, [opts["residual_kernel_size"], 1], [opts["dilation_base"] ** j, 1],
                              opts["act"], opts["conv"], opts["compress"], opts["true_skip"])
            for j in range(opts["n_residual_layers"])]


class SEANetEncoder(nn.Module):
    """Audio ``[B, channels, T]`` -> ``[B, dimension, T / prod(ratios)]``; downsamples in ``ratios`` order."""

    def __init__(self, channels: int, dimension: int, n_filters: int, ratios: Sequence[int], lstm: int,
                 kernel_size: int, last_kernel_size: int, **opts: Any):
        super().__init__()
        self.latent_dim = dimension
        self.in_channels = channels
        self.strides = list(ratios)
        layers: list[nn.Module] = [SConv1d(channels, n_filters, kernel_size, **opts["conv"])]
        width = n_filters
        for ratio in ratios:
            layers += _resnet_blocks(width, opts)
            layers += [_activation(**opts["act"]),
                       SConv1d(width, width * 2, ratio * 2, stride=ratio, **opts["conv"])]
            width *= 2
        if lstm:
            layers.append(SLSTM(width, lstm))
        layers += [_activation(**opts["act"]), SConv1d(width, dimension, last_kernel_size, **opts["conv"])]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SEANetDecoder(nn.Module):
    """Latents ``[B, dimension, L]`` -> audio ``[B, channels, L * prod(ratios)]``; upsamples in ``ratios`` order."""

    def __init__(self, channels: int, dimension: int, n_filters: int, ratios: Sequence[int], lstm: int,
                 kernel_size: int, last_kernel_size: int, final_activation: str | None = None,
                 final_activation_params: dict | None = None, trim_right_ratio: float = 1.0, **opts: Any):
        super().__init__()
        self.latent_dim = dimension
        self.out_channels = channels
        self.strides = list(ratios)
        width = n_filters * 2 ** len(ratios)
        layers: list[nn.Module] = [SConv1d(dimension, width, kernel_size, **opts["conv"])]
        if lstm:
            layers.append(SLSTM(width, lstm))
        conv = opts["conv"]
        for ratio in ratios:
            layers += [_activation(**opts["act"]),
                       SConvTranspose1d(width, width // 2, ratio * 2, stride=ratio, causal=conv["causal"],
                                        norm=conv["norm"], norm_params=conv["norm_params"],
                                        trim_right_ratio=trim_right_ratio)]
            width //= 2
            layers += _resnet_blocks(width, opts)
        layers += [_activation(**opts["act"]), SConv1d(n_filters, channels, last_kernel_size, **conv)]
        if final_activation is not None:
            layers.append(_activation(final_activation, final_activation_params or {}))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# --- builders (config node of an ``encoder`` / ``decoder`` object -> module) ----------------------------

_COMMON_KEYS = ("channels", "dimension", "n_filters", "n_residual_layers", "ratios", "activation",
                "activation_params", "norm", "norm_params", "kernel_size", "last_kernel_size",
                "residual_kernel_size", "dilation_base", "causal", "pad_mode", "true_skip", "compress", "lstm")
_DECODER_KEYS = (*_COMMON_KEYS, "final_activation", "final_activation_params", "trim_right_ratio")


def _seanet_kwargs(cfg: ConfigNode, default_ratios: list[int]) -> dict[str, Any]:
    """Shared SEANet options with encodec's defaults, validated with the key path of any bad value."""
    ratios = positive_ints(cfg, "ratios", default_ratios)
    norm = cfg.choice("norm", NORMS, "weight_norm")
    pad_mode = cfg.choice("pad_mode", ("reflect", "constant", "replicate", "circular"), "reflect")
    activation = cfg.get("activation", "a string", "ELU")
    act = {"name": activation, "params": dict(cfg.get("activation_params", "an object", {"alpha": 1.0}))}
    try:
        _activation(**act)
    except (TypeError, ValueError) as exc:
        raise cfg.error(str(exc), "activation") from exc
    return {
        "channels": cfg.get("channels", "a positive int", 1),
        "dimension": cfg.get("dimension", "a positive int", 128),
        "n_filters": cfg.get("n_filters", "a positive int", 32),
        "ratios": list(ratios),
        "lstm": cfg.get("lstm", "a non-negative int", 2),
        "kernel_size": cfg.get("kernel_size", "a positive int", 7),
        "last_kernel_size": cfg.get("last_kernel_size", "a positive int", 7),
        "n_residual_layers": cfg.get("n_residual_layers", "a non-negative int", 1),
        "residual_kernel_size": cfg.get("residual_kernel_size", "a positive int", 3),
        "dilation_base": cfg.get("dilation_base", "a positive int", 2),
        "compress": cfg.get("compress", "a positive int", 2),
        "true_skip": cfg.get("true_skip", "a bool", False),
        "act": act,
        "conv": {"causal": cfg.get("causal", "a bool", False), "norm": norm,
                 "norm_params": dict(cfg.get("norm_params", "an object", {})), "pad_mode": pad_mode},
    }


def build_seanet_encoder(node: ConfigNode) -> SEANetEncoder:
    cfg = node.child("config", {})
    check_known_keys(cfg, _COMMON_KEYS)
    # upstream's default [2, 2, 2, 2, 2] is symmetric, so its double reversal does not matter here
    return SEANetEncoder(**_seanet_kwargs(cfg, [2, 2, 2, 2, 2]))


def build_seanet_decoder(node: ConfigNode) -> SEANetDecoder:
    cfg = node.child("config", {})
    check_known_keys(cfg, _DECODER_KEYS)
    kwargs = _seanet_kwargs(cfg, [8, 5, 4, 2])  # SEANetDecoder's own default (the factory sets none)
    final = cfg.get("final_activation", "a string", None)
    final_params = dict(cfg.get("final_activation_params", "an object", {}) or {})
    if final is not None:
        try:
            _activation(final, final_params)
        except (TypeError, ValueError) as exc:
            raise cfg.error(str(exc), "final_activation") from exc
    trim = cfg.get("trim_right_ratio", "a number", 1.0)
    if not kwargs["conv"]["causal"] and trim != 1.0:
        raise cfg.error("trim_right_ratio != 1.0 needs causal: true", "trim_right_ratio")
    return SEANetDecoder(final_activation=final, final_activation_params=final_params,
                         trim_right_ratio=trim, **kwargs)
