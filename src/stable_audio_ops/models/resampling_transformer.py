"""0.0.20's ``TransformerResamplingBlock`` in its encoder form, as the ``transformer`` discriminator uses it.

The block downsamples a sequence by ``stride`` with attention instead of a strided conv: the input
(``[b, in_channels, t]``) is zero-padded to a multiple of ``stride``, mapped to the transformer width
by a weight-normed 1x1 conv (``mapping``, legacy weight norm: ``weight_g``/``weight_v``), cut into
groups of ``stride`` frames, and each group gets one learned query token appended (``new_tokens``).
The transformer runs over the whole packed sequence with sliding-window attention
(``sliding_window`` is in output frames; each side sees ``w * (stride + 1)`` packed tokens), and the
appended token of each group is the output frame: ``[b, out_channels, ceil(t / stride)]``.

The transformer layers are 0.0.20's ``TransformerBlock`` as the block configures it: pre-norm
(``rms_norm`` with eps 1e-3, or ``dyt``), fused ``to_qkv`` self-attention with 64-dim heads, q/k
normalised (``rms`` eps 1e-3 or ``dyt``), rotary embedding on the first ``dim_heads / 2`` features of
each head (``rope.inv_freq``), *differential* attention by default (two query/key sets;
``attn(q1, k1, v) - attn(q2, k2, v)``, no learned lambda), optional ``feat_scale`` (learned gains on
the sequence mean and the remainder), SwiGLU feed-forward (or a ``sin`` gate in the last
``sinusoidal_blocks`` layers), zero-initialised branch outputs. Parameter names are upstream's.

Difference from 0.0.20: upstream calls flash-attn with a ``window_size`` and, without it, falls back to
flex/masked SDPA; here it is always SDPA with the equivalent band mask, applied a chunk of queries at a time
(:func:`windowed_attention`: same numbers, no flash-attn dependency, no ``[n, n]`` mask). Only the encoder
direction is here (the decoder form belongs to 0.0.20's ``same``/``taae_v2`` autoencoders); the transformer
layer is shared with the ``taae`` autoencoder's blocks (:mod:`stable_audio_ops.models.taae`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from stable_audio_ops.models.blocks import wn_conv1d
from stable_audio_ops.models.transformer import (  # noqa: F401 (band_mask, windowed_attention: re-exported)
    QK_NORMS,
    Attention,
    ConformerModule,
    DynamicTanh,
    FeedForward,
    LayerNorm,
    LayerScale,
    RMSNorm,
    RotaryEmbedding,
    Sin,
    apply_rotary_pos_emb,
    band_mask,
    make_norm,
    windowed_attention,
)

RESAMPLING_QK_NORMS = QK_NORMS


class ResamplingAttention(Attention):
    """Windowed self-attention (``to_qkv``, ``to_out``, ``q_norm``/``k_norm``, feat-scale gains) of the resampling
    block, the ``taae`` layers and ``local_attn`` (plain, no q/k norm there): the DiT's :class:`Attention`
    (differential attention and DyT q/k norms included) called the way these layers call it."""

    def __init__(self, dim: int, dim_heads: int = 64, zero_init_output: bool = True, qk_norm: str = "none",
                 qk_norm_eps: float = 1e-6, differential: bool = False, feat_scale: bool = False):
        if dim % dim_heads:
            raise ValueError(f"attention width {dim} is not a multiple of the head dim {dim_heads}")
        super().__init__(dim, dim_heads, zero_init_output=zero_init_output, qk_norm=qk_norm,
                         qk_norm_eps=qk_norm_eps, differential=differential, feat_scale=feat_scale)

    def forward(self, x: torch.Tensor, rotary: torch.Tensor, window: tuple[int, int] | None) -> torch.Tensor:
        """``x`` ``[b, n, dim]``; ``rotary`` angles ``[n, rot]``; ``window`` see :func:`windowed_attention`."""
        return super().forward(x, rotary_pos_emb=rotary, window=window)


def _norm(norm_type: str, dim: int, eps: float) -> nn.Module:
    """0.0.20's ``norm_layer_map`` at ``eps`` (DyT has none)."""
    return make_norm(norm_type, dim, {"eps": eps})


class ResamplingTransformerLayer(nn.Module):
    """One pre-norm layer: self-attention, optional conformer conv, feed-forward (upstream ``TransformerBlock``
    with ``add_rope``, no cross-attention or conditioning), windowed by the caller.

    The resampling block uses it with RMS (or DyT) norms at eps 1e-3 and differential attention; the ``taae``
    autoencoder (:mod:`stable_audio_ops.models.taae`) with LayerNorm at eps 1e-2, ``ln`` q/k norms and plain
    attention. Upstream zero-initialises the branch outputs unless ``layer_scale`` is on.
    """

    def __init__(self, dim: int, dim_heads: int = 64, layer_scale: bool = False, conformer: bool = False,
                 dyt: bool = False, differential: bool = True, feat_scale: bool = False, ff_mult: float = 3,
                 sinusoidal: bool = False, norm_type: str | None = None, norm_eps: float = 1e-3,
                 qk_norm: str | None = None, qk_norm_eps: float = 1e-3):
        super().__init__()
        dim_heads = min(dim_heads, dim)
        zero_init = not layer_scale
        norm_type = norm_type or ("dyt" if dyt else "rms_norm")
        qk_norm = qk_norm or ("dyt" if dyt else "rms")
        self.pre_norm = _norm(norm_type, dim, norm_eps)
        self.self_attn = ResamplingAttention(dim, dim_heads, zero_init_output=zero_init, qk_norm=qk_norm,
                                             qk_norm_eps=qk_norm_eps, differential=differential,
                                             feat_scale=feat_scale)
        self.self_attn_scale = LayerScale(dim) if layer_scale else nn.Identity()
        self.ff_norm = _norm(norm_type, dim, norm_eps)
        self.ff = FeedForward(dim, mult=ff_mult, zero_init_output=zero_init)
        if sinusoidal:
            self.ff.ff[0].act = Sin()
        self.ff_scale = LayerScale(dim) if layer_scale else nn.Identity()
        self.conformer = None
        if conformer:
            # 0.0.20's conformer norms (always bias-free LayerNorms) get the block's norm kwargs
            self.conformer = ConformerModule(dim, norm_kwargs={"eps": norm_eps})
            self.conformer_scale = LayerScale(dim) if layer_scale else nn.Identity()
        self.rope = RotaryEmbedding(dim_heads // 2)

    def forward(self, x: torch.Tensor, window: tuple[int, int] | None) -> torch.Tensor:
        """``x`` ``[b, n, dim]``; query ``i`` attends keys ``i - window[0] .. i + window[1]`` (all when None)."""
        rotary = self.rope.forward_from_seq_len(x.shape[-2])
        x = x + self.self_attn_scale(self.self_attn(self.pre_norm(x), rotary, window))
        if self.conformer is not None:
            x = x + self.conformer_scale(self.conformer(x))
        return x + self.ff_scale(self.ff(self.ff_norm(x)))


class TransformerResamplingBlock(nn.Module):
    """Encoder-direction resampling block; ``forward(x, return_features)`` -> ``[b, out, t / stride]``
    (and, with ``return_features``, the mapped input and every layer's output as ``[b, n, d]``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, sliding_window: list[int],
                 transformer_depth: int = 3, checkpointing: bool = False, conformer: bool = False,
                 layer_scale: bool = False, dim_heads: int = 128, differential: bool = True,
                 feat_scale: bool = False, sinusoidal_blocks: int = 0, ff_mult: float = 3,
                 mapping_bias: bool = True, dyt: bool = True, conv_mapping: bool = False):
        super().__init__()
        if stride < 1 or len(sliding_window) != 2 or min(sliding_window) < 0:
            raise ValueError(f"stride must be >= 1 and sliding_window two non-negative ints; got {stride}, "
                             f"{sliding_window}")
        self.stride = stride
        self.checkpointing = checkpointing
        self.window = (sliding_window[0] * (stride + 1), sliding_window[1] * (stride + 1))
        self.mapping = (wn_conv1d(in_channels, out_channels, 3 if conv_mapping else 1, padding="same",
                                  bias=mapping_bias)
                        if in_channels != out_channels else nn.Identity())
        self.transformers = nn.ModuleList(
            ResamplingTransformerLayer(out_channels, dim_heads, layer_scale=layer_scale, conformer=conformer, dyt=dyt,
                                       differential=differential, feat_scale=feat_scale, ff_mult=ff_mult,
                                       sinusoidal=(transformer_depth - i) < sinusoidal_blocks)
            for i in range(transformer_depth)
        )
        self.new_tokens = nn.Parameter(1e-5 * torch.randn(1, 1, out_channels))

    def forward(self, x: torch.Tensor, return_features: bool = False):
        batch = x.shape[0]
        x = F.pad(x, (0, -x.shape[-1] % self.stride))
        x = self.mapping(x).transpose(1, 2)  # [b, n, d]
        features = [x]
        groups = x.reshape(batch * (x.shape[1] // self.stride), self.stride, x.shape[-1])
        tokens = self.new_tokens.expand(groups.shape[0], -1, -1)
        x = torch.cat([groups, tokens], dim=1).reshape(batch, -1, x.shape[-1])
        for layer in self.transformers:
            if self.checkpointing and torch.is_grad_enabled():
                x = checkpoint(layer, x, self.window, use_reentrant=False)
            else:
                x = layer(x, self.window)
            features.append(x)
        out = x.reshape(batch, -1, self.stride + 1, x.shape[-1])[:, :, -1, :].transpose(1, 2)
        return (out, features) if return_features else out
