"""The audio-diffusion-pytorch ``UNet1d`` (v0.0.94 layout, as vendored by stable-audio-tools' ``adp.py``).

Only the parts stable-audio-tools configs reach through ``adp_uncond_1d`` / ``adp_1d`` / ``adp_cfg_1d``
are here: resnet blocks modulated by a mapping vector (diffusion time and/or global ``features``),
strided down/transposed up convolutions, transformers at chosen levels (self-attention, plus
cross-attention to an ``embedding`` token sequence when ``context_embedding_features`` is set), and
input-concat context channels.
Attribute names reproduce upstream's state-dict keys (``to_in.block.block1.groupnorm.weight``,
``downsamples.{i}.transformer.blocks.{j}.attention.to_kv.weight``, ``to_time.0.0.weights``, ...), so
upstream checkpoints load strictly.

Padding follows upstream's convolutions: a "same"-style asymmetric zero padding (more on the left)
for ``Conv1d`` and the matching trim for ``ConvTranspose1d``, so lengths divisible by the product of
``factors`` come back unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def halve_parameters(module: nn.Module) -> None:
    """Upstream halves fresh U-Net weights (a smaller initial output); loaded checkpoints overwrite this."""
    with torch.no_grad():
        for param in module.parameters():
            param.mul_(0.5)


def hold_unet(wrapper: nn.Module, unet: UNet1d) -> None:
    """What every U-Net backbone wrapper does: keep the U-Net as ``model`` (checkpoint keys
    ``model.model.*``), expose its channels and length multiple, and halve its fresh weights (upstream)."""
    wrapper.model = unet
    wrapper.io_channels = unet.in_channels
    wrapper.downsampling_ratio = unet.downsampling_ratio
    halve_parameters(unet)


class PaddedConv1d(nn.Conv1d):
    """Conv1d that pads itself: ``kernel - stride`` zeros split with the larger half on the left, plus
    right padding so the last window is complete (output length ``ceil(L / stride)``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        kernel = (self.kernel_size[0] - 1) * self.dilation[0] + 1
        stride = self.stride[0]
        total = kernel - stride
        length = x.shape[-1]
        frames = (length - kernel + total) / stride + 1
        extra = (math.ceil(frames) - 1) * stride + (kernel - total) - length
        right = total // 2
        left = total - right
        return super().forward(F.pad(x, (left, right + extra)))


class TrimmedConvTranspose1d(nn.ConvTranspose1d):
    """ConvTranspose1d that trims ``kernel - stride`` samples (larger half on the left): ``L -> L * stride``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = super().forward(x)
        total = self.kernel_size[0] - self.stride[0]
        right = total // 2
        left = total - right
        return y[..., left : y.shape[-1] - right]


def make_upsample(in_channels: int, out_channels: int, factor: int, use_nearest: bool) -> nn.Module:
    """Upstream's ``Upsample1d``: a k3 conv at factor 1, nearest + k3 conv, or a k=2*factor transposed conv."""
    if factor == 1:
        return PaddedConv1d(in_channels, out_channels, kernel_size=3)
    if use_nearest:
        return nn.Sequential(nn.Upsample(scale_factor=factor, mode="nearest"),
                             PaddedConv1d(in_channels, out_channels, kernel_size=3))
    return TrimmedConvTranspose1d(in_channels, out_channels, kernel_size=factor * 2, stride=factor)


class ConvBlock1d(nn.Module):
    """GroupNorm -> optional ``x * (scale + 1) + shift`` -> SiLU -> conv."""

    def __init__(self, in_channels: int, out_channels: int, num_groups: int):
        super().__init__()
        self.groupnorm = nn.GroupNorm(num_groups=num_groups, num_channels=in_channels)
        self.activation = nn.SiLU()
        self.project = PaddedConv1d(in_channels, out_channels, kernel_size=3)

    def forward(self, x: torch.Tensor, scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.groupnorm(x)
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.project(self.activation(x))


class MappingToScaleShift(nn.Module):
    """Mapping vector ``[B, F]`` -> per-channel ``(scale, shift)``, each ``[B, C, 1]``."""

    def __init__(self, features: int, channels: int):
        super().__init__()
        self.to_scale_shift = nn.Sequential(nn.SiLU(), nn.Linear(features, channels * 2))

    def forward(self, mapping: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale, shift = self.to_scale_shift(mapping).unsqueeze(-1).chunk(2, dim=1)
        return scale, shift


class ResnetBlock1d(nn.Module):
    """Two conv blocks; the mapping (time embedding) modulates the second. 1x1 conv skip when widths differ."""

    def __init__(self, in_channels: int, out_channels: int, num_groups: int, mapping_features: int | None):
        super().__init__()
        self.use_mapping = mapping_features is not None
        self.block1 = ConvBlock1d(in_channels, out_channels, num_groups)
        if mapping_features is not None:
            self.to_scale_shift = MappingToScaleShift(mapping_features, out_channels)
        self.block2 = ConvBlock1d(out_channels, out_channels, num_groups)
        self.to_out = (PaddedConv1d(in_channels, out_channels, kernel_size=1)
                       if in_channels != out_channels else nn.Identity())

    def forward(self, x: torch.Tensor, mapping: torch.Tensor | None = None) -> torch.Tensor:
        if self.use_mapping != (mapping is not None):
            raise ValueError("a mapping is required exactly when the block was built with mapping features")
        h = self.block1(x)
        scale_shift = self.to_scale_shift(mapping) if mapping is not None else None
        return self.block2(h, scale_shift=scale_shift) + self.to_out(x)


class Patcher(nn.Module):
    """Input stem (patch size 1): a resnet block with one norm group. Holds it as ``block`` for the keys."""

    def __init__(self, in_channels: int, out_channels: int, mapping_features: int | None):
        super().__init__()
        self.block = ResnetBlock1d(in_channels, out_channels, num_groups=1, mapping_features=mapping_features)

    def forward(self, x: torch.Tensor, mapping: torch.Tensor | None = None) -> torch.Tensor:
        return self.block(x, mapping)


class AttentionBase(nn.Module):
    """Multi-head scaled dot-product attention over ``[B, N, H*D]`` projections, then ``to_out``."""

    def __init__(self, features: int, head_features: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.to_out = nn.Linear(head_features * num_heads, features)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, n, _ = q.shape
        q, k, v = (t.reshape(b, t.shape[1], self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # scale = head_features ** -0.5, as upstream
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class Attention(nn.Module):
    """Pre-norm attention: self-attention by default (upstream also normalises the "context", which is
    then the input itself), cross-attention to ``context`` tokens when built with ``context_features``.

    A ``context_mask`` ([B, M], 0 = padding) zeroes the masked tokens' keys and values, as upstream; it
    does not remove them from the softmax.
    """

    def __init__(self, features: int, head_features: int, num_heads: int, context_features: int | None = None):
        super().__init__()
        mid = head_features * num_heads
        self.context_features = context_features
        context_width = features if context_features is None else context_features
        self.norm = nn.LayerNorm(features)
        self.norm_context = nn.LayerNorm(context_width)
        self.to_q = nn.Linear(features, mid, bias=False)
        self.to_kv = nn.Linear(context_width, mid * 2, bias=False)
        self.attention = AttentionBase(features, head_features=head_features, num_heads=num_heads)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.context_features is not None and context is None:
            raise ValueError("this cross-attention layer needs a context (the conditioning embedding)")
        context = x if context is None else context
        q = self.to_q(self.norm(x))
        k, v = self.to_kv(self.norm_context(context)).chunk(2, dim=-1)
        if context_mask is not None:
            keep = context_mask.to(k.dtype).unsqueeze(-1)
            k, v = k * keep, v * keep
        return self.attention(q, k, v)


class TransformerBlock(nn.Module):
    """Self-attention, cross-attention (only with ``context_features``), feed-forward; all residual."""

    def __init__(self, features: int, num_heads: int, head_features: int, multiplier: int,
                 context_features: int | None = None):
        super().__init__()
        self.attention = Attention(features, head_features=head_features, num_heads=num_heads)
        self.use_cross_attention = bool(context_features)
        if self.use_cross_attention:
            self.cross_attention = Attention(features, head_features=head_features, num_heads=num_heads,
                                             context_features=context_features)
        self.feed_forward = nn.Sequential(nn.Linear(features, features * multiplier), nn.GELU(),
                                          nn.Linear(features * multiplier, features))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attention(x) + x
        if self.use_cross_attention:
            x = self.cross_attention(x, context=context, context_mask=context_mask) + x
        return self.feed_forward(x) + x


class _SwapLastDims(nn.Module):
    """``[B, C, T] <-> [B, T, C]``; a module only so the Sequential indices (and keys) match upstream."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class Transformer1d(nn.Module):
    """GroupNorm(32) + 1x1 conv in, transformer blocks on ``[B, T, C]``, 1x1 conv out."""

    def __init__(self, num_layers: int, channels: int, num_heads: int, head_features: int, multiplier: int,
                 context_features: int | None = None):
        super().__init__()
        self.to_in = nn.Sequential(nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True),
                                   PaddedConv1d(channels, channels, kernel_size=1), _SwapLastDims())
        self.blocks = nn.ModuleList([TransformerBlock(channels, num_heads=num_heads, head_features=head_features,
                                                      multiplier=multiplier, context_features=context_features)
                                     for _ in range(num_layers)])
        self.to_out = nn.Sequential(_SwapLastDims(), PaddedConv1d(channels, channels, kernel_size=1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.to_in(x)
        for block in self.blocks:
            x = block(x, context=context, context_mask=context_mask)
        return self.to_out(x)


class LearnedPositionalEmbedding(nn.Module):
    """Continuous time ``[B]`` -> ``[t, sin(2 pi w t), cos(2 pi w t)]`` with learned frequencies ``weights``."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"time embedding dim must be even, got {dim}")
        self.weights = nn.Parameter(torch.randn(dim // 2))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = t.unsqueeze(-1)
        freqs = t * self.weights.unsqueeze(0) * 2 * math.pi
        return torch.cat((t, freqs.sin(), freqs.cos()), dim=-1)


def _attention_shape(channels: int, heads: int | None, features: int | None) -> tuple[int, int]:
    """Upstream derives the missing one of (heads, head features) from the channel count."""
    if features is None and heads is not None:
        features = channels // heads
    if heads is None and features is not None:
        heads = channels // features
    if heads is None or features is None:
        raise ValueError("attention levels need attention_heads or attention_features")
    return heads, features


class DownsampleBlock1d(nn.Module):
    """Strided conv first, then (context-concat) resnet blocks and an optional transformer; every
    block output is a skip for the matching up block."""

    def __init__(self, in_channels: int, out_channels: int, *, factor: int, kernel_multiplier: int, num_groups: int,
                 num_layers: int, mapping_features: int | None, context_channels: int, num_transformer_blocks: int,
                 attention_heads: int | None, attention_features: int | None, attention_multiplier: int | None,
                 embedding_features: int | None = None):
        super().__init__()
        self.use_context = context_channels > 0
        self.downsample = PaddedConv1d(in_channels, out_channels, kernel_size=factor * kernel_multiplier + 1,
                                       stride=factor)
        self.blocks = nn.ModuleList([
            ResnetBlock1d(out_channels + (context_channels if i == 0 else 0), out_channels, num_groups,
                          mapping_features)
            for i in range(num_layers)
        ])
        self.use_transformer = num_transformer_blocks > 0
        if self.use_transformer:
            heads, features = _attention_shape(out_channels, attention_heads, attention_features)
            self.transformer = Transformer1d(num_transformer_blocks, out_channels, heads, features,
                                             int(attention_multiplier or 0), embedding_features)

    def forward(self, x: torch.Tensor, mapping: torch.Tensor | None = None, channels: torch.Tensor | None = None,
                embedding: torch.Tensor | None = None,
                embedding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.downsample(x)
        if self.use_context and channels is not None:
            x = torch.cat([x, channels], dim=1)
        skips = []
        for block in self.blocks:
            x = block(x, mapping)
            skips.append(x)
        if self.use_transformer:
            x = self.transformer(x, embedding, embedding_mask)
            skips.append(x)
        return x, skips


class UpsampleBlock1d(nn.Module):
    """Resnet blocks each fed ``cat(x, skip * skip_scale)``, optional transformer, then upsampling."""

    def __init__(self, in_channels: int, out_channels: int, *, factor: int, num_layers: int, num_groups: int,
                 use_nearest: bool, use_skip_scale: bool, skip_channels: int, mapping_features: int | None,
                 num_transformer_blocks: int, attention_heads: int | None, attention_features: int | None,
                 attention_multiplier: int | None, embedding_features: int | None = None):
        super().__init__()
        self.skip_scale = 2**-0.5 if use_skip_scale else 1.0
        self.blocks = nn.ModuleList([
            ResnetBlock1d(in_channels + skip_channels, in_channels, num_groups, mapping_features)
            for _ in range(num_layers)
        ])
        self.use_transformer = num_transformer_blocks > 0
        if self.use_transformer:
            heads, features = _attention_shape(in_channels, attention_heads, attention_features)
            self.transformer = Transformer1d(num_transformer_blocks, in_channels, heads, features,
                                             int(attention_multiplier or 0), embedding_features)
        self.upsample = make_upsample(in_channels, out_channels, factor, use_nearest)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor], mapping: torch.Tensor | None = None,
                embedding: torch.Tensor | None = None, embedding_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(torch.cat([x, skips.pop() * self.skip_scale], dim=1), mapping)
        if self.use_transformer:
            x = self.transformer(x, embedding, embedding_mask)
        return self.upsample(x)


class BottleneckBlock1d(nn.Module):
    def __init__(self, channels: int, *, num_groups: int, mapping_features: int | None, num_transformer_blocks: int,
                 attention_heads: int | None, attention_features: int | None, attention_multiplier: int | None,
                 embedding_features: int | None = None):
        super().__init__()
        self.pre_block = ResnetBlock1d(channels, channels, num_groups, mapping_features)
        self.use_transformer = num_transformer_blocks > 0
        if self.use_transformer:
            heads, features = _attention_shape(channels, attention_heads, attention_features)
            self.transformer = Transformer1d(num_transformer_blocks, channels, heads, features,
                                             int(attention_multiplier or 0), embedding_features)
        self.post_block = ResnetBlock1d(channels, channels, num_groups, mapping_features)

    def forward(self, x: torch.Tensor, mapping: torch.Tensor | None = None, embedding: torch.Tensor | None = None,
                embedding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.pre_block(x, mapping)
        if self.use_transformer:
            x = self.transformer(x, embedding, embedding_mask)
        return self.post_block(x, mapping)


class UNet1d(nn.Module):
    """U-Net over ``[B, in_channels, T]`` conditioned on diffusion time ``[B]`` and optional context.

    ``T`` must be a multiple of ``prod(factors)``. ``channels_list`` holds one tensor per level that has
    ``context_channels > 0`` (level 0 = input resolution), in level order. With ``context_features``
    a global vector ``features`` [B, F] joins the time embedding in the mapping (the two are summed);
    with ``context_embedding_features`` every transformer cross-attends to ``embedding`` [B, M, E].
    """

    def __init__(self, in_channels: int, channels: int, multipliers: Sequence[int], factors: Sequence[int],
                 num_blocks: Sequence[int], attentions: Sequence[int], *, out_channels: int | None = None,
                 resnet_groups: int = 8, use_context_time: bool = True, kernel_multiplier_downsample: int = 2,
                 use_nearest_upsample: bool = False, use_skip_scale: bool = True,
                 context_features_multiplier: int = 4, context_channels: Sequence[int] | None = None,
                 attention_heads: int | None = None, attention_features: int | None = None,
                 attention_multiplier: int | None = None, context_features: int | None = None,
                 context_embedding_features: int | None = None):
        super().__init__()
        num_layers = len(multipliers) - 1
        if len(factors) != num_layers or len(num_blocks) != num_layers or len(attentions) < num_layers + 1:
            raise ValueError("need len(factors) == len(num_blocks) == len(multipliers) - 1 and "
                             "len(attentions) >= len(multipliers)")
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        context = list(context_channels or [])
        if len(context) > num_layers + 1:
            raise ValueError(f"context_channels has {len(context)} entries; at most {num_layers + 1} levels exist")
        self.context_channels = context + [0] * (num_layers + 1 - len(context))
        self.use_context_time = use_context_time
        self.use_context_features = context_features is not None
        self.context_embedding_features = context_embedding_features
        self.factors = list(factors)
        attn = {"attention_heads": attention_heads, "attention_features": attention_features,
                "attention_multiplier": attention_multiplier, "embedding_features": context_embedding_features}

        mapping_features = None
        if use_context_time or self.use_context_features:
            mapping_features = channels * context_features_multiplier
            self.to_mapping = nn.Sequential(nn.Linear(mapping_features, mapping_features), nn.GELU(),
                                            nn.Linear(mapping_features, mapping_features), nn.GELU())
        if use_context_time:
            self.to_time = nn.Sequential(
                nn.Sequential(LearnedPositionalEmbedding(channels), nn.Linear(channels + 1, mapping_features)),
                nn.GELU(),
            )
        if context_features is not None:
            self.to_features = nn.Sequential(nn.Linear(context_features, mapping_features), nn.GELU())

        self.to_in = Patcher(in_channels + self.context_channels[0], channels * multipliers[0], mapping_features)
        self.downsamples = nn.ModuleList([
            DownsampleBlock1d(channels * multipliers[i], channels * multipliers[i + 1], factor=factors[i],
                              kernel_multiplier=kernel_multiplier_downsample, num_groups=resnet_groups,
                              num_layers=num_blocks[i], mapping_features=mapping_features,
                              context_channels=self.context_channels[i + 1],
                              num_transformer_blocks=attentions[i], **attn)
            for i in range(num_layers)
        ])
        self.bottleneck = BottleneckBlock1d(channels * multipliers[-1], num_groups=resnet_groups,
                                            mapping_features=mapping_features,
                                            num_transformer_blocks=attentions[-1], **attn)
        self.upsamples = nn.ModuleList([
            UpsampleBlock1d(channels * multipliers[i + 1], channels * multipliers[i], factor=factors[i],
                            num_layers=num_blocks[i] + (1 if attentions[i] else 0), num_groups=resnet_groups,
                            use_nearest=use_nearest_upsample, use_skip_scale=use_skip_scale,
                            skip_channels=channels * multipliers[i + 1], mapping_features=mapping_features,
                            num_transformer_blocks=attentions[i], **attn)
            for i in reversed(range(num_layers))
        ])
        self.to_out = Patcher(channels * multipliers[0], out_channels, mapping_features)

    @property
    def downsampling_ratio(self) -> int:
        return math.prod(self.factors)

    def _level_channels(self, channels_list: Sequence[torch.Tensor] | None, level: int) -> torch.Tensor | None:
        expected = self.context_channels[level]
        if expected == 0:
            return None
        index = sum(1 for c in self.context_channels[:level] if c > 0)
        if channels_list is None or index >= len(channels_list) or channels_list[index] is None:
            raise ValueError(f"missing context channels for U-Net level {level} (channels_list[{index}])")
        tensor = channels_list[index]
        if tensor.shape[1] != expected:
            raise ValueError(f"context at channels_list[{index}] has {tensor.shape[1]} channels, expected {expected}")
        return tensor

    def _mapping(self, time: torch.Tensor | None, features: torch.Tensor | None) -> torch.Tensor | None:
        """The vector that modulates every resnet block: embedded time + embedded features, mapped."""
        items = []
        if self.use_context_time:
            if time is None:
                raise ValueError("this U-Net is conditioned on time: pass time [B]")
            items.append(self.to_time(time))
        if self.use_context_features:
            if features is None:
                raise ValueError("this U-Net is conditioned on global features (context_features): pass features")
            items.append(self.to_features(features))
        return self.to_mapping(torch.stack(items).sum(dim=0)) if items else None

    def forward(self, x: torch.Tensor, time: torch.Tensor | None = None, *, features: torch.Tensor | None = None,
                channels_list: Sequence[torch.Tensor] | None = None, embedding: torch.Tensor | None = None,
                embedding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-1] % self.downsampling_ratio:
            raise ValueError(f"input length {x.shape[-1]} must be a multiple of {self.downsampling_ratio} "
                             "(the product of the U-Net factors)")
        if self.context_embedding_features is not None and embedding is None:
            raise ValueError("this U-Net cross-attends to an embedding (context_embedding_features): pass embedding")
        context = self._level_channels(channels_list, 0)
        if context is not None:
            x = torch.cat([x, context], dim=1)
        mapping = self._mapping(time, features)
        x = self.to_in(x, mapping)
        skips_list: list = [x]
        for i, down in enumerate(self.downsamples):
            x, skips = down(x, mapping, self._level_channels(channels_list, i + 1), embedding, embedding_mask)
            skips_list.append(skips)
        x = self.bottleneck(x, mapping, embedding, embedding_mask)
        for up in self.upsamples:
            x = up(x, skips_list.pop(), mapping, embedding, embedding_mask)
        x = x + skips_list.pop()
        return self.to_out(x, mapping)


__all__ = ["PaddedConv1d", "halve_parameters", "hold_unet", "ResnetBlock1d", "Transformer1d", "TrimmedConvTranspose1d", "UNet1d"]
