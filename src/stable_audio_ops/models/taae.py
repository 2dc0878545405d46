"""``taae`` encoder/decoder: 0.0.20's transformer autoencoder (``TAAEEncoder`` / ``TAAEDecoder``).

Each stage is a strided convolution plus a stack of windowed transformer layers at the new rate, so the
convolutions only resample and the transformers do the modelling. Layout (attribute names fix the state-dict
keys, which are 0.0.20's):

encoder.layers = [mapping] + [TAAEBlock per stride] + [activation, WNConv k3 -> latent_dim]
    mapping (``mapping_style``): ``conv`` WNConv k7 in -> c0 | ``linear`` [Transpose, Linear, Transpose] |
    ``none`` nothing (c0 = in_channels); with ``linear``/``none`` the end is [Transpose, Linear, Transpose]
    TAAEBlock.layers = [ResidualUnit d=1, 3, 9 (``use_dilated_conv``)] + [activation, WNConv k=2s stride s
    (Identity when s = 1), [Transpose, TransformerLayer x depth, Transpose]]
decoder.layers = [WNConv k3 latent_dim -> c_last | Transpose, Linear, Transpose] + [TAAEBlock per stride,
    deepest first] + [activation, WNConv k7 (no bias) | Transpose, Linear, Transpose | nothing]
    TAAEBlock.layers = [[Transpose, TransformerLayer x depth, Transpose], activation, WNConvTranspose k=2s
    stride s (Identity when s = 1)] + [ResidualUnit d=1, 3, 9]

The activation is SnakeBeta with ``use_snake`` and Identity otherwise (the residual units use ELU then).
Channel widths are ``channels * c_mults`` (with ``c0 = channels * c_mults[0]``); a transformer layer's heads
are ``min(128, width)`` wide. Its layers are 0.0.20's ``TransformerBlock`` as ``TAAEBlock`` configures it:
bias-free LayerNorm (eps 1e-2) pre-norms, fused ``to_qkv`` attention with per-head ``ln`` q/k norms, RoPE on
half of each head, SwiGLU feed-forward (x4), LayerScale on each branch (``layer_scale``, default on; else
zero-initialised branch outputs), optional conformer convolution (:class:`ResamplingTransformerLayer`).

Difference from 0.0.20: upstream's ``sliding_window`` (``[left, right]`` frames at the stage's rate) is
flash-attn's ``window_size``; without flash-attn it falls back to flex attention or a masked SDPA. Here it
is always torch's ``scaled_dot_product_attention`` with the same band mask (one warning says so): the same
numbers as flash-attn's windowed attention, computed chunk by chunk, so no flash-attn is needed.
``sliding_window: null`` is full attention, as upstream.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.blocks import make_activation, wn_conv1d, wn_conv_transpose1d
from stable_audio_ops.models.oobleck import ResidualUnit, positive_ints
from stable_audio_ops.models.resampling_transformer import ResamplingTransformerLayer

MAPPING_STYLES = ("conv", "linear", "none")
HEAD_DIM = 128  # TAAEBlock's dim_heads; a narrower stage gets one head of its own width

WINDOW_WARNING = ("taae: sliding_window attention runs on torch scaled_dot_product_attention with a band mask "
                  "(flash-attn is not used here); the numbers equal flash-attn's windowed attention")


class Transpose(nn.Module):
    """Swap the last two axes (``[b, c, t]`` <-> ``[b, t, c]``); a module so the layer indices stay upstream's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-1, -2)


def _transformers(dim: int, depth: int, conformer: bool, layer_scale: bool) -> nn.ModuleList:
    layers: list[nn.Module] = [Transpose()]
    layers += [ResamplingTransformerLayer(dim, HEAD_DIM, layer_scale=layer_scale, conformer=conformer,
                                          differential=False, ff_mult=4, norm_type="layer_norm", norm_eps=1e-2,
                                          qk_norm="ln", qk_norm_eps=1e-6)
               for _ in range(depth)]
    return nn.ModuleList([*layers, Transpose()])


def _residual_units(channels: int, use_snake: bool) -> list[nn.Module]:
    return [ResidualUnit(channels, channels, dilation=d, use_snake=use_snake) for d in (1, 3, 9)]


class TAAEBlock(nn.Module):
    """One stage: ``encoder`` = (residual units), activation, strided conv down, transformers at the new rate;
    ``decoder`` = transformers, activation, transposed conv up, (residual units)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kind: str = "encoder",
                 transformer_depth: int = 3, use_snake: bool = False, sliding_window: Sequence[int] | None = (31, 32),
                 checkpointing: bool = False, conformer: bool = False, layer_scale: bool = True,
                 use_dilated_conv: bool = False):
        super().__init__()
        if kind not in ("encoder", "decoder"):
            raise ValueError(f"TAAEBlock kind must be 'encoder' or 'decoder', got {kind!r}")
        self.checkpointing = checkpointing
        self.window = None if sliding_window is None else (int(sliding_window[0]), int(sliding_window[1]))
        padding = math.ceil(stride / 2)
        if kind == "encoder":
            transformers = _transformers(out_channels, transformer_depth, conformer, layer_scale)
            layers = _residual_units(in_channels, use_snake) if use_dilated_conv else []
            layers += [
                make_activation("snake" if use_snake else "none", in_channels),
                wn_conv1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride, padding=padding)
                if stride > 1 else nn.Identity(),
                transformers,
            ]
        else:
            transformers = _transformers(in_channels, transformer_depth, conformer, layer_scale)
            layers = [
                transformers,
                # Sized for the tensor it sees (in_channels). 0.0.20 sizes it out_channels, so its decoder with
                # use_snake fails in forward wherever a stage changes width; identical where widths match.
                make_activation("snake" if use_snake else "none", in_channels),
                wn_conv_transpose1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride, padding=padding)
                if stride > 1 else nn.Identity(),
            ]
            if use_dilated_conv:
                layers += _residual_units(out_channels, use_snake)
        self.layers = nn.ModuleList(layers)

    def _run(self, layer: nn.Module, x: torch.Tensor, *args) -> torch.Tensor:
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint(layer, x, *args, use_reentrant=False)
        return layer(x, *args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            if isinstance(layer, nn.ModuleList):
                for sub in layer:
                    x = self._run(sub, x) if isinstance(sub, Transpose) else self._run(sub, x, self.window)
            else:
                x = self._run(layer, x)
        return x


def _linear_map(dim_in: int, dim_out: int) -> list[nn.Module]:
    return [Transpose(), nn.Linear(dim_in, dim_out), Transpose()]


def _stage_dims(channels: int, c_mults: Sequence[int], edge_channels: int, mapping_style: str) -> list[int]:
    """``[c0, c1, ..., cn]``: c0 is the first stage's width, or the audio channels when there is no mapping."""
    dims = [channels * m for m in c_mults]
    return [edge_channels if mapping_style == "none" else dims[0], *dims]


_warned: set[str] = set()  # warnings already given in this process


def _warn_window(sliding_window: Sequence[int] | None) -> None:
    """Say once per process how the window runs, since upstream users expect flash-attn. Remembered here, not
    by Python's warning registry, which every ``catch_warnings`` (weight-norm construction has one) resets."""
    if sliding_window is not None and WINDOW_WARNING not in _warned:
        _warned.add(WINDOW_WARNING)
        warnings.warn(WINDOW_WARNING, UserWarning, stacklevel=3)


def _checked_stage_dims(edge_channels: int, channels: int, c_mults: Sequence[int], mapping_style: str,
                        sliding_window: Sequence[int] | None) -> list[int]:
    """Check ``mapping_style``, say once how the window runs, and give the stage widths (:func:`_stage_dims`)."""
    if mapping_style not in MAPPING_STYLES:
        raise ValueError(f"mapping_style must be one of {', '.join(MAPPING_STYLES)}; got {mapping_style!r}")
    _warn_window(sliding_window)
    return _stage_dims(channels, c_mults, edge_channels, mapping_style)


def _stages(kind: str, dims: Sequence[int], strides: Sequence[int], transformer_depths: Sequence[int],
            use_snake: bool, sliding_window: Sequence[int] | None, checkpointing: bool, conformer: bool,
            layer_scale: bool, use_dilated_conv: bool) -> list[TAAEBlock]:
    """The stage blocks in the order they run: the encoder's ``dims[i] -> dims[i + 1]`` from the first stage, the
    decoder's mirror ``dims[i + 1] -> dims[i]`` from the deepest. One loop for both, so encoder and decoder of one
    config always pair up (and the module indices, hence the state-dict keys, stay 0.0.20's)."""
    encoder = kind == "encoder"
    blocks = []
    for i in range(len(strides)) if encoder else reversed(range(len(strides))):
        c_in, c_out = (dims[i], dims[i + 1]) if encoder else (dims[i + 1], dims[i])
        blocks.append(TAAEBlock(c_in, c_out, strides[i], kind, transformer_depths[i], use_snake, sliding_window,
                                checkpointing, conformer, layer_scale, use_dilated_conv))
    return blocks


class TAAEEncoder(nn.Module):
    """Audio ``[b, in_channels, t]`` -> latents ``[b, latent_dim, t / prod(strides)]``."""

    def __init__(self, in_channels: int = 2, channels: int = 128, latent_dim: int = 32,
                 c_mults: Sequence[int] = (1, 2, 4, 8), strides: Sequence[int] = (2, 4, 8, 8),
                 transformer_depths: Sequence[int] = (3, 3, 3, 3), use_snake: bool = False,
                 sliding_window: Sequence[int] | None = (63, 64), checkpointing: bool = False,
                 conformer: bool = False, layer_scale: bool = True, use_dilated_conv: bool = False,
                 mapping_style: str = "conv"):
        super().__init__()
        dims = _checked_stage_dims(in_channels, channels, c_mults, mapping_style, sliding_window)
        self.in_channels = in_channels
        self.latent_dim = latent_dim
        self.strides = list(strides)
        layers: list[nn.Module] = []
        if mapping_style == "conv":
            layers.append(wn_conv1d(in_channels, dims[0], kernel_size=7, padding=3, bias=True))
        elif mapping_style == "linear":
            layers += _linear_map(in_channels, dims[0])
        layers += _stages("encoder", dims, strides, transformer_depths, use_snake, sliding_window, checkpointing,
                          conformer, layer_scale, use_dilated_conv)
        if mapping_style == "conv":
            layers += [make_activation("snake" if use_snake else "none", dims[-1]),
                       wn_conv1d(dims[-1], latent_dim, kernel_size=3, padding=1, bias=True)]
        else:
            layers += _linear_map(dims[-1], latent_dim)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TAAEDecoder(nn.Module):
    """Latents ``[b, latent_dim, l]`` -> audio ``[b, out_channels, l * prod(strides)]`` (no final tanh)."""

    def __init__(self, out_channels: int = 2, channels: int = 128, latent_dim: int = 32,
                 c_mults: Sequence[int] = (1, 2, 4, 8), strides: Sequence[int] = (2, 4, 8, 8),
                 transformer_depths: Sequence[int] = (3, 3, 3, 3), use_snake: bool = False,
                 sliding_window: Sequence[int] | None = (63, 64), checkpointing: bool = False,
                 conformer: bool = False, layer_scale: bool = True, use_dilated_conv: bool = False,
                 mapping_style: str = "conv"):
        super().__init__()
        dims = _checked_stage_dims(out_channels, channels, c_mults, mapping_style, sliding_window)
        self.out_channels = out_channels
        self.latent_dim = latent_dim
        self.strides = list(strides)
        layers: list[nn.Module] = (
            [wn_conv1d(latent_dim, dims[-1], kernel_size=3, padding=1, bias=True)] if mapping_style == "conv"
            else _linear_map(latent_dim, dims[-1]))
        layers += _stages("decoder", dims, strides, transformer_depths, use_snake, sliding_window, checkpointing,
                          conformer, layer_scale, use_dilated_conv)
        if mapping_style == "conv":
            layers += [make_activation("snake" if use_snake else "none", dims[0]),
                       wn_conv1d(dims[0], out_channels, kernel_size=7, padding=3, bias=False)]
        elif mapping_style == "linear":
            layers += _linear_map(dims[0], out_channels)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


# --- builders (config node of an ``encoder`` / ``decoder`` object -> module) ----------------------------

_COMMON_KEYS = ("channels", "latent_dim", "c_mults", "strides", "transformer_depths", "use_snake", "sliding_window",
                "checkpointing", "conformer", "layer_scale", "use_dilated_conv", "mapping_style")


def _taae_kwargs(cfg: ConfigNode, edge_key: str, decoder: bool) -> dict:
    """0.0.20's TAAE options with its defaults; every value upstream would crash on later is a keyed error."""
    channels = cfg.get("channels", "a positive int", 128)
    c_mults = positive_ints(cfg, "c_mults", [1, 2, 4, 8])
    strides = positive_ints(cfg, "strides", [2, 4, 8, 8])
    depths = cfg.get("transformer_depths", "a list of ints", [3, 3, 3, 3])
    for key, values in (("strides", strides), ("transformer_depths", depths)):
        if len(values) != len(c_mults):
            raise cfg.error(f"has {len(values)} entries but c_mults has {len(c_mults)}; they must match", key)
    if any(d < 0 for d in depths):
        raise cfg.error(f"expected non-negative ints, got {depths!r}", "transformer_depths")
    window = cfg.get("sliding_window", "a list of ints", None) if cfg.has("sliding_window") else [63, 64]
    if window is not None and (len(window) != 2 or min(window) < 0):
        raise cfg.error(f"expected [left, right] (two non-negative ints) or null, got {window!r}", "sliding_window")
    mapping_style = cfg.choice("mapping_style", MAPPING_STYLES, "conv")
    edge = cfg.get(edge_key, "a positive int", 2)
    dims = _stage_dims(channels, c_mults, edge, mapping_style)
    for i, stride in enumerate(strides):
        width = dims[i + 1]
        if depths[i] and width > HEAD_DIM and width % HEAD_DIM:
            raise cfg.error(f"stage {i} is {channels} x {c_mults[i]} = {width} wide; a transformer stage wider than "
                            f"{HEAD_DIM} must be a multiple of {HEAD_DIM} (its heads are {HEAD_DIM} wide)", "c_mults")
        if stride == 1 and dims[i] != width:
            raise cfg.error(f"stage {i} has stride 1 (no convolution) but changes width {dims[i]} -> {width}; "
                            "use stride > 1 there or equal widths", "strides")
        if decoder and stride > 1 and stride % 2:
            # k = 2s, padding ceil(s/2) transposed convs give l * s - 1 samples for odd s (upstream layout)
            raise cfg.error(f"odd stride {stride} in a decoder returns one sample too few per stage; "
                            "use even strides", "strides")
    return {
        edge_key: edge,
        "channels": channels,
        "latent_dim": cfg.get("latent_dim", "a positive int", 32),
        "c_mults": c_mults,
        "strides": strides,
        "transformer_depths": list(depths),
        "use_snake": cfg.get("use_snake", "a bool", False),
        "sliding_window": window,
        "checkpointing": cfg.get("checkpointing", "a bool", False),
        "conformer": cfg.get("conformer", "a bool", False),
        "layer_scale": cfg.get("layer_scale", "a bool", True),
        "use_dilated_conv": cfg.get("use_dilated_conv", "a bool", False),
        "mapping_style": mapping_style,
    }


def build_taae_encoder(node: ConfigNode) -> TAAEEncoder:
    cfg = node.child("config", {})
    check_known_keys(cfg, ("in_channels", *_COMMON_KEYS))
    return TAAEEncoder(**_taae_kwargs(cfg, "in_channels", decoder=False))


def build_taae_decoder(node: ConfigNode) -> TAAEDecoder:
    cfg = node.child("config", {})
    check_known_keys(cfg, ("out_channels", *_COMMON_KEYS))
    return TAAEDecoder(**_taae_kwargs(cfg, "out_channels", decoder=True))


__all__ = ["TAAEBlock", "TAAEDecoder", "TAAEEncoder", "Transpose", "build_taae_decoder", "build_taae_encoder"]
