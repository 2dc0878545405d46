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
from stable_audio_ops.models.transformer import (
    ConformerModule,
    FeedForward,
    LayerNorm,
    LayerScale,
    RMSNorm,
    RotaryEmbedding,
    apply_rotary_pos_emb,
)

RESAMPLING_QK_NORMS = ("none", "l2", "ln", "rms", "dyt")


class DynamicTanh(nn.Module):
    """DyT normalisation-free layer: ``gamma * tanh(alpha * x) + beta`` (keys ``alpha``, ``gamma``, ``beta``)."""

    def __init__(self, dim: int, init_alpha: float = 4.0, **_ignored):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1) * init_alpha)
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.tanh(self.alpha * x) + self.beta


class Sin(nn.Module):
    """``sin(pi x)``: the gate of 0.0.20's sinusoidal feed-forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(torch.pi * x)


def band_mask(length: int, left: int, right: int, device: torch.device) -> torch.Tensor:
    """Boolean ``[length, length]``: query ``i`` may attend key ``j`` when ``i - left <= j <= i + right``
    (flash-attn's ``window_size=(left, right)``)."""
    return _band(torch.arange(length, device=device), torch.arange(length, device=device), left, right)


def _band(queries: torch.Tensor, keys: torch.Tensor, left: int, right: int) -> torch.Tensor:
    delta = keys[None, :] - queries[:, None]
    return (delta >= -left) & (delta <= right)


def windowed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: tuple[int, int] | None,
                       chunk_size: int = 1024) -> torch.Tensor:
    """SDPA over ``[b, h, n, d]`` where query ``i`` sees keys ``i - left .. i + right`` (``window`` =
    ``(left, right)``; ``None``: every key).

    Why chunks: one ``[n, n]`` band mask grows with the square of the sequence (an autoencoder's first stage
    runs at half the audio rate), so queries go ``chunk_size`` at a time against only the keys their band
    reaches; each query's softmax still spans exactly its band, so the numbers equal one masked SDPA call.
    """
    if window is None:
        return F.scaled_dot_product_attention(q, k, v)
    left, right = window
    n = q.shape[-2]
    index = torch.arange(n, device=q.device)
    outs = []
    for start in range(0, n, chunk_size):
        end = min(start + chunk_size, n)
        k_start, k_end = max(0, start - left), min(n, end + right)
        mask = _band(index[start:end], index[k_start:k_end], left, right)
        outs.append(F.scaled_dot_product_attention(q[..., start:end, :], k[..., k_start:k_end, :],
                                                   v[..., k_start:k_end, :], attn_mask=mask))
    return torch.cat(outs, dim=-2)


class ResamplingAttention(nn.Module):
    """Windowed self-attention (``to_qkv``, ``to_out``, ``q_norm``/``k_norm``, feat-scale gains) of the resampling
    block, the ``taae`` layers and ``local_attn`` (plain, no q/k norm there)."""

    def __init__(self, dim: int, dim_heads: int = 64, zero_init_output: bool = True, qk_norm: str = "none",
                 qk_norm_eps: float = 1e-6, differential: bool = False, feat_scale: bool = False):
        super().__init__()
        if qk_norm not in RESAMPLING_QK_NORMS:
            raise ValueError(f"qk_norm must be one of {', '.join(RESAMPLING_QK_NORMS)}; got {qk_norm!r}")
        if dim % dim_heads:
            raise ValueError(f"attention width {dim} is not a multiple of the head dim {dim_heads}")
        self.num_heads = dim // dim_heads
        self.differential = differential
        self.to_qkv = nn.Linear(dim, dim * (5 if differential else 3), bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        if zero_init_output:
            nn.init.zeros_(self.to_out.weight)
        self.qk_norm = qk_norm
        self.qk_norm_eps = qk_norm_eps
        if qk_norm == "ln":
            self.q_norm = nn.LayerNorm(dim_heads, eps=qk_norm_eps)
            self.k_norm = nn.LayerNorm(dim_heads, eps=qk_norm_eps)
        elif qk_norm == "rms":
            self.q_norm = RMSNorm(dim_heads, eps=qk_norm_eps)
            self.k_norm = RMSNorm(dim_heads, eps=qk_norm_eps)
        elif qk_norm == "dyt":
            self.q_norm = DynamicTanh(dim_heads)
            self.k_norm = DynamicTanh(dim_heads)
        self.feat_scale = feat_scale
        if feat_scale:
            self.lambda_dc = nn.Parameter(torch.zeros(dim))
            self.lambda_hf = nn.Parameter(torch.zeros(dim))

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.reshape(b, n, self.num_heads, -1).transpose(1, 2)

    def _normed(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.qk_norm == "l2":
            return F.normalize(q, dim=-1, eps=self.qk_norm_eps), F.normalize(k, dim=-1, eps=self.qk_norm_eps)
        if self.qk_norm == "none":
            return q, k
        return self.q_norm(q), self.k_norm(k)

    def forward(self, x: torch.Tensor, rotary: torch.Tensor, window: tuple[int, int] | None) -> torch.Tensor:
        """``x`` ``[b, n, dim]``; ``rotary`` angles ``[n, rot]``; ``window`` see :func:`windowed_attention`."""
        parts = [self._heads(t) for t in self.to_qkv(x).chunk(5 if self.differential else 3, dim=-1)]
        v = parts[2]
        pairs = [(parts[0], parts[1])] + ([(parts[3], parts[4])] if self.differential else [])
        outs = []
        for q, k in pairs:
            q, k = self._normed(q, k)
            q = apply_rotary_pos_emb(q, rotary).to(v.dtype)
            k = apply_rotary_pos_emb(k, rotary).to(v.dtype)
            outs.append(windowed_attention(q, k, v, window))
        out = outs[0] - outs[1] if self.differential else outs[0]
        b, h, n, d = out.shape
        out = self.to_out(out.transpose(1, 2).reshape(b, n, h * d))
        if self.feat_scale:
            mean = out.mean(dim=-2, keepdim=True)
            out = out + self.lambda_dc * mean + self.lambda_hf * (out - mean)
        return out


NORM_TYPES = ("layer_norm", "rms_norm", "dyt")


def _norm(norm_type: str, dim: int, eps: float) -> nn.Module:
    """0.0.20's ``norm_layer_map``: bias-free LayerNorm (``gamma`` + zero ``beta`` buffer), RMSNorm or DyT."""
    if norm_type == "layer_norm":
        return LayerNorm(dim, eps=eps)
    if norm_type == "rms_norm":
        return RMSNorm(dim, eps=eps)
    if norm_type == "dyt":
        return DynamicTanh(dim)
    raise ValueError(f"norm_type must be one of {', '.join(NORM_TYPES)}; got {norm_type!r}")


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
