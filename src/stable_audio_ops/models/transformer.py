"""The ContinuousTransformer used by the DiT (stable-audio-tools ``models/transformer.py`` semantics).

Attribute names mirror upstream so checkpoints load unchanged
(``layers.{i}.self_attn.to_qkv.weight``, ``layers.{i}.pre_norm.{gamma,beta}``, ``rotary_pos_emb.inv_freq``, ...).

Only the parts that configs of the DiT family use are implemented. Everything runs on PyTorch's
``scaled_dot_product_attention`` (no flash-attn / flex-attention kernels), so there are no padding
masks in attention at all, exactly like upstream's SDPA path.

Upstream behaviours kept on purpose (checkpoints were trained with them):

* Rotary embeddings have ``max(dim_heads // 2, 32)`` dims and rotate only that many leading features
  of each head (partial rotary); head dims below 32 therefore do not work, as upstream.
* When the cross-attention context is narrower than the model (``project_cond_tokens: false``), keys
  and values get ``dim_context // dim_heads`` heads, each shared by several query heads.
* The LayerNorm has no learned bias: ``beta`` is a zero buffer, but a *persistent* one, so it is in
  the state dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from stable_audio_ops.models.step_cache import StepCache, cached

QK_NORMS = ("none", "l2", "ln", "rms")


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
    """RMS norm (used for ``qk_norm: rms``); key ``gamma`` like upstream."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, x.shape[-1:], self.gamma, self.eps)


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

class Attention(nn.Module):
    """Multi-head attention on SDPA; self-attention uses a fused ``to_qkv``, cross-attention
    ``to_q`` + ``to_kv`` (keys/values at the context width, heads shared when it is narrower)."""

    def __init__(self, dim: int, dim_heads: int = 64, dim_context: int | None = None, causal: bool = False,
                 zero_init_output: bool = True, qk_norm: str = "none", qk_norm_eps: float = 1e-6):
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
        if dim_context is not None:
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_kv = nn.Linear(dim_kv, dim_kv * 2, bias=False)
        else:
            self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
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
        self.causal = causal

    @staticmethod
    def _split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
        b, n, _ = t.shape
        return t.reshape(b, n, heads, -1).transpose(1, 2)

    def _keys_values(self, kv_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = (self._split_heads(t, self.kv_heads) for t in self.to_kv(kv_input).chunk(2, dim=-1))
        return k, v

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                rotary_pos_emb: torch.Tensor | None = None, rotary_pos_emb_k: torch.Tensor | None = None,
                causal: bool | None = None, cache: StepCache | None = None) -> torch.Tensor:
        """``cache`` (inside a generation): the keys/values of a context and the rotary cos/sin tables are
        computed once and reused while the same tensors come in."""
        if context is not None and not hasattr(self, "to_q"):
            raise ValueError("this attention layer was built for self-attention but got a context")
        if hasattr(self, "to_q"):
            q = self._split_heads(self.to_q(x), self.num_heads)
            if context is not None:
                k, v = cached(cache, ("kv", id(self)), (context,), lambda: self._keys_values(context))
            else:
                k, v = self._keys_values(x)
        else:
            q, k, v = (self._split_heads(t, self.num_heads) for t in self.to_qkv(x).chunk(3, dim=-1))

        if self.qk_norm == "l2":
            q = F.normalize(q, dim=-1, eps=self.qk_norm_eps)
            k = F.normalize(k, dim=-1, eps=self.qk_norm_eps)
        elif self.qk_norm != "none":
            q, k = self.q_norm(q).to(q.dtype), self.k_norm(k).to(k.dtype)

        if rotary_pos_emb is not None:
            q_freqs = rotary_pos_emb
            if rotary_pos_emb_k is not None:
                k_freqs = rotary_pos_emb_k
            elif q.shape[-2] == k.shape[-2]:
                k_freqs = rotary_pos_emb  # the stretch below would be x 1.0: same numbers, and cacheable
            elif q.shape[-2] >= k.shape[-2]:
                # upstream stretches the key angles when the two lengths differ
                k_freqs = (q.shape[-2] / k.shape[-2]) * rotary_pos_emb
            else:
                q_freqs, k_freqs = (k.shape[-2] / q.shape[-2]) * rotary_pos_emb, rotary_pos_emb
            q_cos_sin = cached(cache, "rotary_q", (q_freqs,), lambda: rotary_cos_sin(q_freqs))
            k_cos_sin = q_cos_sin if k_freqs is q_freqs else cached(cache, "rotary_k", (k_freqs,),
                                                                     lambda: rotary_cos_sin(k_freqs))
            q = apply_rotary_pos_emb(q, q_freqs, q_cos_sin).to(v.dtype)
            k = apply_rotary_pos_emb(k, k_freqs, k_cos_sin).to(v.dtype)

        if self.num_heads != self.kv_heads:
            repeat = self.num_heads // self.kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)

        causal = self.causal if causal is None else causal
        if q.shape[-2] == 1:
            causal = False
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        b, h, n, d = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, n, h * d))


# --- blocks ------------------------------------------------------------------------------------------

class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, optional conformer conv, feed-forward.

    With ``global_cond_dim`` the block is adaLN-modulated: the (already embedded, 6*dim wide) global
    vector plus the learned ``to_scale_shift_gate`` give scale/shift/gate for the self-attention and
    feed-forward branches; branches are gated with ``sigmoid(1 - gate)`` as upstream.
    """

    def __init__(self, dim: int, dim_heads: int = 64, cross_attend: bool = False, dim_context: int | None = None,
                 global_cond_dim: int | None = None, causal: bool = False, zero_init_branch_outputs: bool = True,
                 layer_scale: bool = False, conformer: bool = False, attn_kwargs: Mapping[str, Any] | None = None,
                 ff_kwargs: Mapping[str, Any] | None = None, norm_kwargs: Mapping[str, Any] | None = None):
        super().__init__()
        attn_kwargs, ff_kwargs, norm_kwargs = dict(attn_kwargs or {}), dict(ff_kwargs or {}), dict(norm_kwargs or {})
        self.dim = dim
        self.dim_heads = min(dim_heads, dim)
        if layer_scale:
            zero_init_branch_outputs = False  # LayerScale already starts the branches near zero
        self.pre_norm = LayerNorm(dim, **norm_kwargs)
        self.self_attn = Attention(dim, dim_heads=self.dim_heads, causal=causal,
                                   zero_init_output=zero_init_branch_outputs, **attn_kwargs)
        self.self_attn_scale = LayerScale(dim) if layer_scale else nn.Identity()
        self.cross_attend = cross_attend
        if cross_attend:
            self.cross_attend_norm = LayerNorm(dim, **norm_kwargs)
            self.cross_attn = Attention(dim, dim_heads=self.dim_heads, dim_context=dim_context, causal=causal,
                                        zero_init_output=zero_init_branch_outputs, **attn_kwargs)
            self.cross_attn_scale = LayerScale(dim) if layer_scale else nn.Identity()
        # unmodulated and unscaled even under adaLN / layer_scale, as upstream
        self.conformer = ConformerModule(dim, norm_kwargs=norm_kwargs) if conformer else None
        self.ff_norm = LayerNorm(dim, **norm_kwargs)
        self.ff = FeedForward(dim, zero_init_output=zero_init_branch_outputs, **ff_kwargs)
        self.ff_scale = LayerScale(dim) if layer_scale else nn.Identity()
        self.global_cond_dim = global_cond_dim
        if global_cond_dim is not None:
            self.to_scale_shift_gate = nn.Parameter(torch.randn(6 * dim) / dim ** 0.5)

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
        return x if self.conformer is None else x + self.conformer(x)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, global_cond: torch.Tensor | None = None,
                rotary_pos_emb: torch.Tensor | None = None,
                cross_attn_rotary_pos_emb: torch.Tensor | None = None, cache: StepCache | None = None) -> torch.Tensor:
        if self.global_cond_dim is not None and global_cond is not None:
            mods = (self.to_scale_shift_gate + global_cond).unsqueeze(1).chunk(6, dim=-1)
            scale_self, shift_self, gate_self, scale_ff, shift_ff, gate_ff = mods
            h = self.pre_norm(x) * (1 + scale_self) + shift_self
            h = self.self_attn(h, rotary_pos_emb=rotary_pos_emb, cache=cache) * torch.sigmoid(1 - gate_self)
            x = x + self.self_attn_scale(h)
            x = self._conformer(self._cross(x, context, rotary_pos_emb, cross_attn_rotary_pos_emb, cache))
            h = self.ff_norm(x) * (1 + scale_ff) + shift_ff
            h = self.ff(h) * torch.sigmoid(1 - gate_ff)
            return x + self.ff_scale(h)

        x = x + self.self_attn_scale(self.self_attn(self.pre_norm(x), rotary_pos_emb=rotary_pos_emb, cache=cache))
        x = self._conformer(self._cross(x, context, rotary_pos_emb, cross_attn_rotary_pos_emb, cache))
        return x + self.ff_scale(self.ff(self.ff_norm(x)))


class ContinuousTransformer(nn.Module):
    """Stack of :class:`TransformerBlock` with input/output projections.

    Sequence layout inside: ``[memory tokens, prepend tokens, x]``; memory tokens are stripped at the
    output, prepend tokens are left for the caller to strip (the DiT does). ``use_checkpointing``
    recomputes each block in the backward pass (training only; upstream always checkpoints).
    """

    def __init__(self, dim: int, depth: int, *, dim_in: int | None = None, dim_out: int | None = None,
                 dim_heads: int = 64, cross_attend: bool = False, cond_token_dim: int | None = None,
                 final_cross_attn_ix: int = -1, global_cond_dim: int | None = None, causal: bool = False,
                 rotary_pos_emb: bool = True, cross_attn_rotary_pos_emb: bool = False,
                 zero_init_branch_outputs: bool = True, use_sinusoidal_emb: bool = False,
                 use_abs_pos_emb: bool = False, abs_pos_emb_max_length: int = 10000, num_memory_tokens: int = 0,
                 use_checkpointing: bool = False, **block_kwargs: Any):
        super().__init__()
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
                x = checkpoint(layer, x, context, global_cond, rotary, cross_rotary, use_reentrant=False)
            else:
                x = layer(x, context=context, global_cond=global_cond, rotary_pos_emb=rotary,
                          cross_attn_rotary_pos_emb=cross_rotary, cache=cache)
            if return_info:
                info["hidden_states"].append(x)
            if exit_layer_ix is not None and layer_ix == exit_layer_ix:
                x = x[:, self.num_memory_tokens:, :]
                return (x, info) if return_info else x

        x = self.project_out(x[:, self.num_memory_tokens:, :])
        return (x, info) if return_info else x


__all__ = [
    "QK_NORMS", "AbsolutePositionalEmbedding", "Attention", "ConformerModule", "ContinuousTransformer", "FeedForward", "GLU",
    "LayerNorm", "LayerScale", "RMSNorm", "RotaryEmbedding", "ScaledSinusoidalEmbedding", "TransformerBlock",
    "apply_rotary_pos_emb", "rotary_cos_sin", "rotate_half",
]

