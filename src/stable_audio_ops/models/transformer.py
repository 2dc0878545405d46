"""The ContinuousTransformer used by the DiT (stable-audio-tools ``models/transformer.py`` semantics).

Attribute names mirror upstream so checkpoints load unchanged
(``layers.{i}.self_attn.to_qkv.weight``, ``layers.{i}.pre_norm.{gamma,beta}``, ``rotary_pos_emb.inv_freq``, ...).

Only the parts that configs of the DiT family use are implemented. Everything runs on PyTorch's
``scaled_dot_product_attention`` (no flash-attn / flex-attention kernels), so there are no padding
masks in attention at all, exactly like upstream's SDPA path. ``sliding_window`` (flash-attn's
``window_size``) is the same band mask applied through SDPA a chunk of queries at a time
(:func:`windowed_attention`, upstream's own no-flash fallback); one warning per process says so.

Upstream behaviours kept on purpose (checkpoints were trained with them):

* Rotary embeddings have ``max(dim_heads // 2, 32)`` dims and rotate only that many leading features
  of each head (partial rotary); head dims below 32 therefore do not work, as upstream.
* When the cross-attention context is narrower than the model (``project_cond_tokens: false``), keys
  and values get ``dim_context // dim_heads`` heads, each shared by several query heads.
* The LayerNorm has no learned bias: ``beta`` is a zero buffer, but a *persistent* one, so it is in
  the state dict.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from stable_audio_ops.models.step_cache import StepCache, cached

QK_NORMS = ("none", "l2", "ln", "rms", "dyt")
NORM_TYPES = ("layer_norm", "rms_norm", "dyt")
SLIDING_WINDOW_WARNING = ("sliding_window: self-attention runs on torch scaled_dot_product_attention with a band "
                          "mask (flash-attn is not used here); the numbers equal flash-attn's windowed attention")
_warned: set[str] = set()  # warnings already given in this process


# --- positional embeddings ---------------------------------------------------------------------------

class RotaryEmbedding(nn.Module):
    """Rotary position frequencies; ``inv_freq`` is a persistent buffer (it is in upstream checkpoints)."""

    def __init__(self, dim: int, base: float = 10000.0, interpolation_factor: float = 1.0):
        super().__init__()
        if interpolation_factor < 1.0:
            raise ValueError(f"interpolation_factor must be >= 1, got {interpolation_factor}")
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq)
        self.interpolation_factor = interpolation_factor

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """Angles ``[n, dim]`` for positions ``[n]`` (always float32, whatever the model dtype)."""
        positions = positions.to(torch.float32) / self.interpolation_factor
        freqs = positions[:, None] * self.inv_freq.to(torch.float32)[None, :]
        return torch.cat((freqs, freqs), dim=-1)

    def forward_from_seq_len(self, seq_len: int) -> torch.Tensor:
        return self.forward(torch.arange(seq_len, device=self.inv_freq.device))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def rotary_cos_sin(freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of a rotary angle table in float32 (what :func:`apply_rotary_pos_emb` needs)."""
    freqs = freqs.to(torch.float32)
    return freqs.cos(), freqs.sin()


def apply_rotary_pos_emb(t: torch.Tensor, freqs: torch.Tensor,
                         cos_sin: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Rotate the first ``freqs.shape[-1]`` features of ``t`` ([b, h, n, d]); the rest pass through.

    The last ``n`` rows of ``freqs`` are used (upstream slices ``freqs[-n:]``), computed in float32.
    ``cos_sin``: :func:`rotary_cos_sin` of ``freqs`` computed once beforehand (elementwise, so slicing
    afterwards gives the same numbers).
    """
    out_dtype = t.dtype
    rot_dim, seq_len = freqs.shape[-1], t.shape[-2]
    cos, sin = rotary_cos_sin(freqs) if cos_sin is None else cos_sin
    cos, sin = cos[-seq_len:, :], sin[-seq_len:, :]
    t = t.to(torch.float32)
    rotated, passed = t[..., :rot_dim], t[..., rot_dim:]
    rotated = rotated * cos + rotate_half(rotated) * sin
    return torch.cat((rotated.to(out_dtype), passed.to(out_dtype)), dim=-1)


class ScaledSinusoidalEmbedding(nn.Module):
    """Additive sinusoidal positions with a learned scale (``pos_emb.scale``)."""

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"sinusoidal embedding needs an even dim, got {dim}")
        self.scale = nn.Parameter(torch.ones(1) * dim ** -0.5)
        half = dim // 2
        inv_freq = theta ** -(torch.arange(half).float() / half)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.shape[1], device=x.device, dtype=torch.float32)
        emb = pos[:, None] * self.inv_freq[None, :]
        return torch.cat((emb.sin(), emb.cos()), dim=-1) * self.scale


class AbsolutePositionalEmbedding(nn.Module):
    """Learned additive positions (``pos_emb.emb.weight``), scaled by ``dim ** -0.5``."""

    def __init__(self, dim: int, max_seq_len: int):
        super().__init__()
        self.scale = dim ** -0.5
        self.max_seq_len = max_seq_len
        self.emb = nn.Embedding(max_seq_len, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq_len = x.shape[1]
        if seq_len > self.max_seq_len:
            raise ValueError(f"sequence of {seq_len} tokens exceeds the absolute position embedding's "
                             f"max length {self.max_seq_len} (abs_pos_emb_max_length)")
        return self.emb(torch.arange(seq_len, device=x.device)) * self.scale


# --- norms and feed-forward --------------------------------------------------------------------------

class LayerNorm(nn.Module):
    """LayerNorm without a learned bias by default; ``beta`` is then a persistent zero buffer."""

    def __init__(self, dim: int, bias: bool = False, fix_scale: bool = False, force_fp32: bool = False,
                 eps: float = 1e-5):
        super().__init__()
        if fix_scale:
            self.register_buffer("gamma", torch.ones(dim))
        else:
            self.gamma = nn.Parameter(torch.ones(dim))
        if bias:
            self.beta = nn.Parameter(torch.zeros(dim))
        else:
            self.register_buffer("beta", torch.zeros(dim))
        self.eps = eps
        self.force_fp32 = force_fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.force_fp32:
            out = F.layer_norm(x.float(), x.shape[-1:], self.gamma.float(), self.beta.float(), self.eps)
            return out.to(x.dtype)
        return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta, self.eps)


class RMSNorm(nn.Module):
    """RMS norm (``qk_norm: rms``, ``norm_type: rms_norm``); key ``gamma`` like upstream (a buffer with
    ``fix_scale``)."""

    def __init__(self, dim: int, fix_scale: bool = False, force_fp32: bool = False, eps: float = 1e-5):
        super().__init__()
        if fix_scale:
            self.register_buffer("gamma", torch.ones(dim))
        else:
            self.gamma = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.force_fp32 = force_fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.force_fp32:
            return F.rms_norm(x.float(), x.shape[-1:], self.gamma.float(), self.eps).to(x.dtype)
        return F.rms_norm(x, x.shape[-1:], self.gamma, self.eps)


class DynamicTanh(nn.Module):
    """DyT normalisation-free layer: ``gamma * tanh(alpha * x) + beta`` (keys ``alpha``, ``gamma``, ``beta``).

    Takes and ignores norm keyword arguments, as upstream does, so ``norm_kwargs`` written for a LayerNorm
    still build."""

    def __init__(self, dim: int, init_alpha: float = 4.0, **_ignored: Any):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1) * init_alpha)
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.tanh(self.alpha * x) + self.beta


def make_norm(norm_type: str, dim: int, norm_kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """0.0.20's ``norm_layer_map`` (``norm_type``): bias-free LayerNorm, RMSNorm or DyT."""
    norm_kwargs = dict(norm_kwargs or {})
    if norm_type == "layer_norm":
        return LayerNorm(dim, **norm_kwargs)
    if norm_type == "rms_norm":
        return RMSNorm(dim, **norm_kwargs)
    if norm_type == "dyt":
        return DynamicTanh(dim, **norm_kwargs)
    raise ValueError(f"norm_type must be one of {', '.join(NORM_TYPES)}; got {norm_type!r}")


class Sin(nn.Module):
    """``sin(pi x)``: the gate of 0.0.20's sinusoidal feed-forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(torch.pi * x)


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_val: float = 1e-5):
        super().__init__()
        self.scale = nn.Parameter(torch.full([dim], init_val))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class GLU(nn.Module):
    """Gated linear unit: ``proj`` makes value and gate in one matmul (SwiGLU with SiLU)."""

    def __init__(self, dim_in: int, dim_out: int, activation: nn.Module):
        super().__init__()
        self.act = activation
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * self.act(gate)


class FeedForward(nn.Module):
    """``ff = Sequential(in, Identity, out, Identity)``: the Identity slots keep upstream's key indices
    (``ff.ff.0.proj.*`` and ``ff.ff.2.*``), which upstream needs for its conv variant."""

    def __init__(self, dim: int, dim_out: int | None = None, mult: float = 4, no_bias: bool = False,
                 glu: bool = True, zero_init_output: bool = True):
        super().__init__()
        inner_dim = int(dim * mult)
        dim_out = dim if dim_out is None else dim_out
        if glu:
            linear_in: nn.Module = GLU(dim, inner_dim, nn.SiLU())
        else:
            linear_in = nn.Sequential(nn.Identity(), nn.Linear(dim, inner_dim, bias=not no_bias), nn.Identity(),
                                      nn.SiLU())
        linear_out = nn.Linear(inner_dim, dim_out, bias=not no_bias)
        if zero_init_output:
            nn.init.zeros_(linear_out.weight)
            if linear_out.bias is not None:
                nn.init.zeros_(linear_out.bias)
        self.ff = nn.Sequential(linear_in, nn.Identity(), linear_out, nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)


class ConformerModule(nn.Module):
    """Conformer convolution branch (``conformer: true``): local mixing along time that attention lacks.

    norm -> 1x1 conv -> SiLU-GLU -> depthwise conv (k17) -> norm -> SiLU -> 1x1 conv, all convs without
    bias. Upstream uses its bias-free LayerNorm where the paper has batch norm; kept for checkpoints.
    """

    def __init__(self, dim: int, norm_kwargs: Mapping[str, Any] | None = None, kernel_size: int = 17):
        super().__init__()
        norm_kwargs = dict(norm_kwargs or {})
        self.in_norm = LayerNorm(dim, **norm_kwargs)
        self.pointwise_conv = nn.Conv1d(dim, dim, kernel_size=1, bias=False)
        self.glu = GLU(dim, dim, nn.SiLU())
        self.depthwise_conv = nn.Conv1d(dim, dim, kernel_size=kernel_size, groups=dim, padding=kernel_size // 2,
                                        bias=False)
        self.mid_norm = LayerNorm(dim, **norm_kwargs)
        self.pointwise_conv_2 = nn.Conv1d(dim, dim, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` is ``[b, n, d]``; the convolutions run on ``[b, d, n]``."""
        h = self.pointwise_conv(self.in_norm(x).transpose(1, 2)).transpose(1, 2)
        h = self.depthwise_conv(self.glu(h).transpose(1, 2)).transpose(1, 2)
        h = F.silu(self.mid_norm(h))
        return self.pointwise_conv_2(h.transpose(1, 2)).transpose(1, 2)


# --- attention ---------------------------------------------------------------------------------------

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


class Attention(nn.Module):
    """Multi-head attention on SDPA; self-attention uses a fused ``to_qkv``, cross-attention
    ``to_q`` + ``to_kv`` (keys/values at the context width, heads shared when it is narrower).

    ``differential`` (differential attention, 0.0.20's form): a second query/key set is projected in the
    same matmuls (``to_qkv`` gives ``q, k, v, q_diff, k_diff``; ``to_q`` gives ``q, q_diff`` and ``to_kv``
    ``k, k_diff, v``) and the output is ``attn(q, k, v) - attn(q_diff, k_diff, v)``, without the paper's
    learned lambda. ``feat_scale`` adds learned gains on the sequence mean of the output (``lambda_dc``) and
    on the rest (``lambda_hf``), both zero at init.
    """

    def __init__(self, dim: int, dim_heads: int = 64, dim_context: int | None = None, causal: bool = False,
                 zero_init_output: bool = True, qk_norm: str = "none", qk_norm_eps: float = 1e-6,
                 differential: bool = False, feat_scale: bool = False):
        super().__init__()
        if qk_norm not in QK_NORMS:
            raise ValueError(f"qk_norm must be one of {', '.join(QK_NORMS)}; got {qk_norm!r}")
        dim_kv = dim_context if dim_context is not None else dim
        self.dim = dim
        self.dim_heads = dim_heads
        self.num_heads = dim // dim_heads
        self.kv_heads = dim_kv // dim_heads
        if self.num_heads < 1 or self.kv_heads < 1 or self.num_heads % self.kv_heads:
            raise ValueError(f"attention with dim {dim}, context dim {dim_kv} and head dim {dim_heads} gives "
                             f"{self.num_heads} query heads and {self.kv_heads} key/value heads; "
                             "the query heads must be a positive multiple of the key/value heads")
        self.differential = differential
        pairs = 2 if differential else 1
        if dim_context is not None:
            self.to_q = nn.Linear(dim, dim * pairs, bias=False)
            self.to_kv = nn.Linear(dim_kv, dim_kv * (pairs + 1), bias=False)
        else:
            self.to_qkv = nn.Linear(dim, dim * (2 * pairs + 1), bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        if zero_init_output:
            nn.init.zeros_(self.to_out.weight)
        self.qk_norm = qk_norm
        self.qk_norm_eps = qk_norm_eps
        if qk_norm == "ln":
            self.q_norm = nn.LayerNorm(dim_heads, elementwise_affine=True, eps=qk_norm_eps)
            self.k_norm = nn.LayerNorm(dim_heads, elementwise_affine=True, eps=qk_norm_eps)
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
        self.causal = causal

    @staticmethod
    def _split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
        b, n, _ = t.shape
        return t.reshape(b, n, heads, -1).transpose(1, 2)

    def _keys_values(self, kv_input: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """``((k,) or (k, k_diff), v)`` from ``to_kv`` (upstream's chunk order: keys first, values last)."""
        parts = [self._split_heads(t, self.kv_heads)
                 for t in self.to_kv(kv_input).chunk(3 if self.differential else 2, dim=-1)]
        return tuple(parts[:-1]), parts[-1]

    def _normed(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.qk_norm == "l2":
            return F.normalize(q, dim=-1, eps=self.qk_norm_eps), F.normalize(k, dim=-1, eps=self.qk_norm_eps)
        if self.qk_norm == "none":
            return q, k
        return self.q_norm(q).to(q.dtype), self.k_norm(k).to(k.dtype)

    @staticmethod
    def _rotary_freqs(q_len: int, k_len: int, rotary_pos_emb: torch.Tensor,
                      rotary_pos_emb_k: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Query and key angle tables; upstream stretches the key angles when the two lengths differ."""
        if rotary_pos_emb_k is not None:
            return rotary_pos_emb, rotary_pos_emb_k
        if q_len == k_len:
            return rotary_pos_emb, rotary_pos_emb  # the stretch would be x 1.0: same numbers, and cacheable
        if q_len >= k_len:
            return rotary_pos_emb, (q_len / k_len) * rotary_pos_emb
        return (k_len / q_len) * rotary_pos_emb, rotary_pos_emb

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                rotary_pos_emb: torch.Tensor | None = None, rotary_pos_emb_k: torch.Tensor | None = None,
                causal: bool | None = None, cache: StepCache | None = None,
                window: tuple[int, int] | None = None) -> torch.Tensor:
        """``cache`` (inside a generation): the keys/values of a context and the rotary cos/sin tables are
        computed once and reused while the same tensors come in. ``window``: ``(left, right)`` band of keys
        each query sees (self-attention only, see :func:`windowed_attention`)."""
        if context is not None and not hasattr(self, "to_q"):
            raise ValueError("this attention layer was built for self-attention but got a context")
        if hasattr(self, "to_q"):
            qs = [self._split_heads(t, self.num_heads)
                  for t in self.to_q(x).chunk(2 if self.differential else 1, dim=-1)]
            if context is not None:
                ks, v = cached(cache, ("kv", id(self)), (context,), lambda: self._keys_values(context))
            else:
                ks, v = self._keys_values(x)
        else:
            parts = [self._split_heads(t, self.num_heads)
                     for t in self.to_qkv(x).chunk(5 if self.differential else 3, dim=-1)]
            qs, ks, v = [parts[0], *parts[3:4]], [parts[1], *parts[4:5]], parts[2]

        causal = self.causal if causal is None else causal
        if qs[0].shape[-2] == 1:
            causal = False
        repeat = self.num_heads // self.kv_heads
        if repeat > 1:
            v = v.repeat_interleave(repeat, dim=1)
        if rotary_pos_emb is not None:
            q_freqs, k_freqs = self._rotary_freqs(qs[0].shape[-2], ks[0].shape[-2], rotary_pos_emb, rotary_pos_emb_k)
            q_cos_sin = cached(cache, "rotary_q", (q_freqs,), lambda: rotary_cos_sin(q_freqs))
            k_cos_sin = q_cos_sin if k_freqs is q_freqs else cached(cache, "rotary_k", (k_freqs,),
                                                                     lambda: rotary_cos_sin(k_freqs))
        outs = []
        for q, k in zip(qs, ks, strict=True):
            q, k = self._normed(q, k)
            if rotary_pos_emb is not None:
                q = apply_rotary_pos_emb(q, q_freqs, q_cos_sin).to(v.dtype)
                k = apply_rotary_pos_emb(k, k_freqs, k_cos_sin).to(v.dtype)
            if repeat > 1:
                k = k.repeat_interleave(repeat, dim=1)
            if window is not None:
                outs.append(windowed_attention(q, k, v, window))
            else:
                outs.append(F.scaled_dot_product_attention(q, k, v, is_causal=causal))
        out = outs[0] - outs[1] if self.differential else outs[0]
        b, h, n, d = out.shape
        out = self.to_out(out.transpose(1, 2).reshape(b, n, h * d))
        if self.feat_scale:
            mean = out.mean(dim=-2, keepdim=True)
            out = out + self.lambda_dc * mean + self.lambda_hf * (out - mean)
        return out


# --- blocks ------------------------------------------------------------------------------------------

class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, optional conformer conv, feed-forward.

    With ``global_cond_dim`` the block is adaLN-modulated: the (already embedded, 6*dim wide) global
    vector plus the learned ``to_scale_shift_gate`` give scale/shift/gate for the self-attention and
    feed-forward branches; branches are gated with ``sigmoid(1 - gate)`` as upstream.

    ``norm_type`` picks the block's three norms (``layer_norm`` | ``rms_norm`` | ``dyt``); the conformer's
    norms stay bias-free LayerNorms, as upstream. ``add_rope`` gives the block its own rotary table
    (``rope.inv_freq``, ``dim_heads // 2`` dims), used only when the transformer passes none.
    """

    def __init__(self, dim: int, dim_heads: int = 64, cross_attend: bool = False, dim_context: int | None = None,
                 global_cond_dim: int | None = None, causal: bool = False, zero_init_branch_outputs: bool = True,
                 layer_scale: bool = False, conformer: bool = False, add_rope: bool = False,
                 norm_type: str = "layer_norm", attn_kwargs: Mapping[str, Any] | None = None,
                 ff_kwargs: Mapping[str, Any] | None = None, norm_kwargs: Mapping[str, Any] | None = None):
        super().__init__()
        attn_kwargs, ff_kwargs, norm_kwargs = dict(attn_kwargs or {}), dict(ff_kwargs or {}), dict(norm_kwargs or {})
        self.dim = dim
        self.dim_heads = min(dim_heads, dim)
        if layer_scale:
            zero_init_branch_outputs = False  # LayerScale already starts the branches near zero
        self.pre_norm = make_norm(norm_type, dim, norm_kwargs)
        self.self_attn = Attention(dim, dim_heads=self.dim_heads, causal=causal,
                                   zero_init_output=zero_init_branch_outputs, **attn_kwargs)
        self.self_attn_scale = LayerScale(dim) if layer_scale else nn.Identity()
        self.cross_attend = cross_attend
        if cross_attend:
            self.cross_attend_norm = make_norm(norm_type, dim, norm_kwargs)
            self.cross_attn = Attention(dim, dim_heads=self.dim_heads, dim_context=dim_context, causal=causal,
                                        zero_init_output=zero_init_branch_outputs, **attn_kwargs)
            self.cross_attn_scale = LayerScale(dim) if layer_scale else nn.Identity()
        # unmodulated even under adaLN, as upstream; LayerScaled (``conformer_scale``) with layer_scale
        self.conformer = ConformerModule(dim, norm_kwargs=norm_kwargs) if conformer else None
        if conformer:
            self.conformer_scale = LayerScale(dim) if layer_scale else nn.Identity()
        self.ff_norm = make_norm(norm_type, dim, norm_kwargs)
        self.ff = FeedForward(dim, zero_init_output=zero_init_branch_outputs, **ff_kwargs)
        self.ff_scale = LayerScale(dim) if layer_scale else nn.Identity()
        self.global_cond_dim = global_cond_dim
        if global_cond_dim is not None:
            self.to_scale_shift_gate = nn.Parameter(torch.randn(6 * dim) / dim ** 0.5)
        self.rope = RotaryEmbedding(self.dim_heads // 2) if add_rope else None

    def _cross(self, x: torch.Tensor, context: torch.Tensor | None, rotary_pos_emb: torch.Tensor | None,
               cross_attn_rotary_pos_emb: torch.Tensor | None, cache: StepCache | None) -> torch.Tensor:
        if context is None or not self.cross_attend:
            return x
        if cross_attn_rotary_pos_emb is not None:
            out = self.cross_attn(self.cross_attend_norm(x), context=context, rotary_pos_emb=rotary_pos_emb,
                                  rotary_pos_emb_k=cross_attn_rotary_pos_emb, cache=cache)
        else:
            out = self.cross_attn(self.cross_attend_norm(x), context=context, cache=cache)
        return x + self.cross_attn_scale(out)

    def _conformer(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.conformer is None else x + self.conformer_scale(self.conformer(x))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, global_cond: torch.Tensor | None = None,
                rotary_pos_emb: torch.Tensor | None = None,
                cross_attn_rotary_pos_emb: torch.Tensor | None = None, cache: StepCache | None = None,
                window: tuple[int, int] | None = None) -> torch.Tensor:
        """``window``: the self-attention band (``sliding_window``); cross-attention always sees every token."""
        if rotary_pos_emb is None and self.rope is not None:
            rope, seq_len = self.rope, x.shape[-2]
            rotary_pos_emb = cached(cache, ("rope", id(self)), (seq_len,), lambda: rope.forward_from_seq_len(seq_len))
        if self.global_cond_dim is not None and global_cond is not None:
            mods = (self.to_scale_shift_gate + global_cond).unsqueeze(1).chunk(6, dim=-1)
            scale_self, shift_self, gate_self, scale_ff, shift_ff, gate_ff = mods
            h = self.pre_norm(x) * (1 + scale_self) + shift_self
            h = self.self_attn(h, rotary_pos_emb=rotary_pos_emb, cache=cache, window=window)
            h = h * torch.sigmoid(1 - gate_self)
            x = x + self.self_attn_scale(h)
            x = self._conformer(self._cross(x, context, rotary_pos_emb, cross_attn_rotary_pos_emb, cache))
            h = self.ff_norm(x) * (1 + scale_ff) + shift_ff
            h = self.ff(h) * torch.sigmoid(1 - gate_ff)
            return x + self.ff_scale(h)

        x = x + self.self_attn_scale(self.self_attn(self.pre_norm(x), rotary_pos_emb=rotary_pos_emb, cache=cache,
                                                    window=window))
        x = self._conformer(self._cross(x, context, rotary_pos_emb, cross_attn_rotary_pos_emb, cache))
        return x + self.ff_scale(self.ff(self.ff_norm(x)))


def _window(sliding_window: tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """Validated ``(left, right)`` band; warns once per process that it runs without flash-attn. Remembered
    here, not by Python's warning registry, which every ``catch_warnings`` resets."""
    if sliding_window is None:
        return None
    window = tuple(sliding_window)
    if len(window) != 2 or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in window):
        raise ValueError(f"sliding_window must be two non-negative ints [left, right], got {sliding_window!r}")
    if SLIDING_WINDOW_WARNING not in _warned:
        _warned.add(SLIDING_WINDOW_WARNING)
        warnings.warn(SLIDING_WINDOW_WARNING, UserWarning, stacklevel=3)
    return window[0], window[1]


class ContinuousTransformer(nn.Module):
    """Stack of :class:`TransformerBlock` with input/output projections.

    Sequence layout inside: ``[memory tokens, prepend tokens, x]``; memory tokens are stripped at the
    output, prepend tokens are left for the caller to strip (the DiT does). ``use_checkpointing``
    recomputes each block in the backward pass (training only; upstream always checkpoints).
    ``sliding_window`` ``[left, right]``: each token's self-attention sees only the tokens ``left`` before to
    ``right`` after it in that layout (memory and prepend tokens included, as upstream).
    """

    def __init__(self, dim: int, depth: int, *, dim_in: int | None = None, dim_out: int | None = None,
                 dim_heads: int = 64, cross_attend: bool = False, cond_token_dim: int | None = None,
                 final_cross_attn_ix: int = -1, global_cond_dim: int | None = None, causal: bool = False,
                 rotary_pos_emb: bool = True, cross_attn_rotary_pos_emb: bool = False,
                 zero_init_branch_outputs: bool = True, use_sinusoidal_emb: bool = False,
                 use_abs_pos_emb: bool = False, abs_pos_emb_max_length: int = 10000, num_memory_tokens: int = 0,
                 sliding_window: tuple[int, int] | list[int] | None = None, use_checkpointing: bool = False,
                 **block_kwargs: Any):
        super().__init__()
        self.sliding_window = _window(sliding_window)
        self.dim = dim
        self.depth = depth
        self.causal = causal
        self.use_checkpointing = use_checkpointing
        self.project_in = nn.Linear(dim_in, dim, bias=False) if dim_in is not None else nn.Identity()
        self.project_out = nn.Linear(dim, dim_out, bias=False) if dim_out is not None else nn.Identity()
        rot_dim = max(dim_heads // 2, 32)
        self.rotary_pos_emb = RotaryEmbedding(rot_dim) if rotary_pos_emb else None
        self.cross_attn_rotary_pos_emb = RotaryEmbedding(rot_dim) if cross_attn_rotary_pos_emb else None
        self.num_memory_tokens = num_memory_tokens
        if num_memory_tokens > 0:
            self.memory_tokens = nn.Parameter(torch.randn(num_memory_tokens, dim))
        if use_sinusoidal_emb and use_abs_pos_emb:
            raise ValueError("use_sinusoidal_emb and use_abs_pos_emb are mutually exclusive")
        self.use_sinusoidal_emb = use_sinusoidal_emb
        self.use_abs_pos_emb = use_abs_pos_emb
        if use_sinusoidal_emb:
            self.pos_emb: nn.Module = ScaledSinusoidalEmbedding(dim)
        elif use_abs_pos_emb:
            self.pos_emb = AbsolutePositionalEmbedding(dim, abs_pos_emb_max_length + num_memory_tokens)
        self.global_cond_embedder = None
        if global_cond_dim is not None:
            self.global_cond_embedder = nn.Sequential(nn.Linear(global_cond_dim, dim), nn.SiLU(),
                                                      nn.Linear(dim, dim * 6))
        self.final_cross_attn_ix = final_cross_attn_ix
        self.layers = nn.ModuleList([
            TransformerBlock(dim, dim_heads=dim_heads,
                             cross_attend=cross_attend and (final_cross_attn_ix == -1 or i <= final_cross_attn_ix),
                             dim_context=cond_token_dim, global_cond_dim=global_cond_dim, causal=causal,
                             zero_init_branch_outputs=zero_init_branch_outputs, **block_kwargs)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                prepend_embeds: torch.Tensor | None = None, global_cond: torch.Tensor | None = None,
                return_info: bool = False, exit_layer_ix: int | None = None, cache: StepCache | None = None):
        """``cache``: see :mod:`stable_audio_ops.models.step_cache` (rotary tables, context keys/values)."""
        batch = x.shape[0]
        x = x.to(next(self.parameters()).dtype)
        info: dict[str, list[torch.Tensor]] = {"hidden_states": []}
        x = self.project_in(x)
        if prepend_embeds is not None:
            if prepend_embeds.shape[-1] != x.shape[-1]:
                raise ValueError(f"prepend tokens have dim {prepend_embeds.shape[-1]}, the model {x.shape[-1]}")
            x = torch.cat((prepend_embeds.to(x.dtype), x), dim=-2)
        if self.num_memory_tokens > 0:
            x = torch.cat((self.memory_tokens.expand(batch, -1, -1), x), dim=1)

        rotary = None
        if self.rotary_pos_emb is not None:
            rotary_emb, seq_len = self.rotary_pos_emb, x.shape[1]
            rotary = cached(cache, "rotary", (seq_len,), lambda: rotary_emb.forward_from_seq_len(seq_len))
        cross_rotary = None
        if self.cross_attn_rotary_pos_emb is not None and context is not None:
            # upstream sizes this by the context's last (feature) axis; kept for checkpoint parity
            cross_emb, ctx_len = self.cross_attn_rotary_pos_emb, context.shape[-1]
            cross_rotary = cached(cache, "cross_rotary", (ctx_len,), lambda: cross_emb.forward_from_seq_len(ctx_len))
        if self.use_sinusoidal_emb or self.use_abs_pos_emb:
            x = x + self.pos_emb(x)
        if global_cond is not None and self.global_cond_embedder is not None:
            global_cond = self.global_cond_embedder(global_cond)

        recompute = self.use_checkpointing and self.training and torch.is_grad_enabled()
        for layer_ix, layer in enumerate(self.layers):
            if recompute:
                x = checkpoint(layer, x, context, global_cond, rotary, cross_rotary, use_reentrant=False,
                               window=self.sliding_window)
            else:
                x = layer(x, context=context, global_cond=global_cond, rotary_pos_emb=rotary,
                          cross_attn_rotary_pos_emb=cross_rotary, cache=cache, window=self.sliding_window)
            if return_info:
                info["hidden_states"].append(x)
            if exit_layer_ix is not None and layer_ix == exit_layer_ix:
                x = x[:, self.num_memory_tokens:, :]
                return (x, info) if return_info else x

        x = self.project_out(x[:, self.num_memory_tokens:, :])
        return (x, info) if return_info else x


__all__ = [
    "NORM_TYPES", "QK_NORMS", "SLIDING_WINDOW_WARNING", "AbsolutePositionalEmbedding", "Attention", "ConformerModule",
    "ContinuousTransformer", "DynamicTanh", "FeedForward", "GLU", "LayerNorm", "LayerScale", "RMSNorm",
    "RotaryEmbedding", "ScaledSinusoidalEmbedding", "Sin", "TransformerBlock", "apply_rotary_pos_emb", "band_mask",
    "make_norm", "rotary_cos_sin", "rotate_half", "windowed_attention",
]

