"""``local_attn`` encoder/decoder: stable-audio-tools' all-transformer autoencoder halves
(``TransformerEncoder1D`` / ``TransformerDecoder1D`` of ``models/local_attention.py``), upstream's keys.

Every stage trades sequence length for channels with a linear map instead of a convolution: the encoder runs
a local transformer, then folds ``ratio`` neighbouring frames into one (``b (n r) c -> b n (c r)``) and
projects ``c * r`` back to the stage width (``project_down``); the decoder projects up to ``c * r`` and unfolds
(``b n (c r) -> b (n r) c``) before its transformer. Layout (attribute names fix the state-dict keys):

encoder: project_in Linear(in_channels -> embed_dims[0]), layers = [TransformerDownsampleBlock1D per stage],
    project_out Linear(embed_dims[-1] -> out_channels); all bias-free
    block: transformer, project_in Linear(previous width -> embed_dim) (Identity when equal), project_down
decoder: the same with TransformerUpsampleBlock1D (project_in, project_up, then transformer)
transformer (``ContinuousLocalTransformer``): rotary_pos_emb (``max(head_dim / 2, 32)`` dims), layers =
    [[LayerNorm, Attention (to_qkv, to_out), Identity, LayerNorm, FeedForward (SwiGLU, ``ff_mult`` 2,
    bias-free output)] per layer]; pre-norm residual branches, zero-initialised outputs

Differences from upstream, which cannot build this type at all: 0.0.20 (PyPI) no longer has it (its factory
answers "Unknown encoder type"), and the last code that had it (GitHub main, fact sheet "[bug@HEAD]") passes
``natten_kernel_size`` to an ``Attention`` that no longer takes it (TypeError), so the neighbourhood attention
it meant is unspecified. Here the attention is a band: each frame attends the ``local_attn_window_size`` frames
centred on it (``w // 2`` before, ``w - 1 - w // 2`` after; with ``causal`` the ``w`` frames ending at it), on
torch's SDPA; at the sequence edges the band is cut, where NATTEN would shift it. Where a head is narrower
than the rotary table (upstream's default 96-wide stage with 12 heads has 8-dim heads; upstream would fail
there), the rotation uses the table's first ``head_dim / 2`` frequencies over the whole head. Upstream's
gradient checkpointing of every sub-layer is left out (it saves memory, not numbers). Inputs whose length is
not a multiple of ``prod(ratios)`` are zero-padded at the end (upstream fails in its rearrange).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.oobleck import positive_ints
from stable_audio_ops.models.resampling_transformer import ResamplingAttention
from stable_audio_ops.models.transformer import FeedForward, LayerNorm, RotaryEmbedding


def local_window(window_size: int, causal: bool) -> tuple[int, int]:
    """``(left, right)`` frames a query sees: ``window_size`` frames in all, centred (or ending at it)."""
    if causal:
        return window_size - 1, 0
    return window_size // 2, window_size - 1 - window_size // 2


class LocalTransformer(nn.Module):
    """Upstream's ``ContinuousLocalTransformer`` without conditioning: ``[b, n, dim]`` -> ``[b, n, dim]``."""

    def __init__(self, dim: int, depth: int, heads: int = 8, local_attn_window_size: int = 64, ff_mult: float = 2,
                 causal: bool = False):
        super().__init__()
        self.dim_head = dim // heads
        self.window = local_window(local_attn_window_size, causal)
        self.rotary_pos_emb = RotaryEmbedding(max(self.dim_head // 2, 32))
        self.layers = nn.ModuleList(
            nn.ModuleList([
                LayerNorm(dim),
                ResamplingAttention(dim, self.dim_head, zero_init_output=True),
                nn.Identity(),  # upstream's cross-attention slot (cross_attn_cond_dim 0)
                LayerNorm(dim),
                FeedForward(dim, mult=ff_mult, no_bias=True),
            ])
            for _ in range(depth)
        )

    def _rotary(self, length: int) -> torch.Tensor:
        freqs = self.rotary_pos_emb.forward_from_seq_len(length)  # [n, 2 * half]: cat(f, f)
        half = freqs.shape[-1] // 2
        if 2 * half <= self.dim_head:
            return freqs
        keep = self.dim_head // 2
        return torch.cat((freqs[:, :keep], freqs[:, half:half + keep]), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rotary = self._rotary(x.shape[1])
        for attn_norm, attn, _, ff_norm, ff in self.layers:
            x = x + attn(attn_norm(x), rotary, self.window)
            x = x + ff(ff_norm(x))
        return x


def _fold(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """``b (n r) c -> b n (c r)``."""
    b, n, c = x.shape
    return x.reshape(b, n // ratio, ratio, c).transpose(2, 3).reshape(b, n // ratio, c * ratio)


def _unfold(x: torch.Tensor, ratio: int) -> torch.Tensor:
    """``b n (c r) -> b (n r) c``."""
    b, n, cr = x.shape
    return x.reshape(b, n, cr // ratio, ratio).transpose(2, 3).reshape(b, n * ratio, cr // ratio)


def _project(dim_in: int, dim_out: int) -> nn.Module:
    return nn.Linear(dim_in, dim_out, bias=False) if dim_in != dim_out else nn.Identity()


class TransformerDownsampleBlock1D(nn.Module):
    def __init__(self, in_channels: int, embed_dim: int, depth: int, heads: int, downsample_ratio: int,
                 local_attn_window_size: int, **transformer_kwargs):
        super().__init__()
        self.downsample_ratio = downsample_ratio
        self.transformer = LocalTransformer(embed_dim, depth, heads, local_attn_window_size, **transformer_kwargs)
        self.project_in = _project(in_channels, embed_dim)
        self.project_down = nn.Linear(embed_dim * downsample_ratio, embed_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project_down(_fold(self.transformer(self.project_in(x)), self.downsample_ratio))


class TransformerUpsampleBlock1D(nn.Module):
    def __init__(self, in_channels: int, embed_dim: int, depth: int, heads: int, upsample_ratio: int,
                 local_attn_window_size: int, **transformer_kwargs):
        super().__init__()
        self.upsample_ratio = upsample_ratio
        self.transformer = LocalTransformer(embed_dim, depth, heads, local_attn_window_size, **transformer_kwargs)
        self.project_in = _project(in_channels, embed_dim)
        self.project_up = nn.Linear(embed_dim, embed_dim * upsample_ratio, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer(_unfold(self.project_up(self.project_in(x)), self.upsample_ratio))


def _stages(block: type[nn.Module], embed_dims: Sequence[int], heads: Sequence[int], depths: Sequence[int],
            ratios: Sequence[int], local_attn_window_size: int, **transformer_kwargs) -> nn.Sequential:
    return nn.Sequential(*(
        block(embed_dims[i - 1] if i > 0 else embed_dims[0], embed_dims[i], depths[i], heads[i], ratios[i],
              local_attn_window_size, **transformer_kwargs)
        for i in range(len(depths))
    ))


class TransformerEncoder1D(nn.Module):
    """Audio ``[b, in_channels, t]`` -> latents ``[b, out_channels, ceil(t / prod(ratios))]``."""

    latent_dim_key = "out_channels"  # the config key the autoencoder's consistency errors name

    def __init__(self, in_channels: int, out_channels: int, embed_dims: Sequence[int] = (96, 192, 384, 768),
                 heads: Sequence[int] = (12, 12, 12, 12), depths: Sequence[int] = (3, 3, 3, 3),
                 ratios: Sequence[int] = (2, 2, 2, 2), local_attn_window_size: int = 64, **transformer_kwargs):
        super().__init__()
        self.in_channels = in_channels
        self.latent_dim = out_channels
        self.strides = list(ratios)
        self.layers = _stages(TransformerDownsampleBlock1D, embed_dims, heads, depths, ratios, local_attn_window_size,
                              **transformer_kwargs)
        self.project_in = nn.Linear(in_channels, embed_dims[0], bias=False)
        self.project_out = nn.Linear(embed_dims[-1], out_channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, -x.shape[-1] % math.prod(self.strides)))
        return self.project_out(self.layers(self.project_in(x.transpose(1, 2)))).transpose(1, 2)


class TransformerDecoder1D(nn.Module):
    """Latents ``[b, in_channels, l]`` -> audio ``[b, out_channels, l * prod(ratios)]`` (no final tanh)."""

    latent_dim_key = "in_channels"

    def __init__(self, in_channels: int, out_channels: int, embed_dims: Sequence[int] = (768, 384, 192, 96),
                 heads: Sequence[int] = (12, 12, 12, 12), depths: Sequence[int] = (3, 3, 3, 3),
                 ratios: Sequence[int] = (2, 2, 2, 2), local_attn_window_size: int = 64, **transformer_kwargs):
        super().__init__()
        self.out_channels = out_channels
        self.latent_dim = in_channels
        self.strides = list(ratios)
        self.layers = _stages(TransformerUpsampleBlock1D, embed_dims, heads, depths, ratios, local_attn_window_size,
                              **transformer_kwargs)
        self.project_in = nn.Linear(in_channels, embed_dims[0], bias=False)
        self.project_out = nn.Linear(embed_dims[-1], out_channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project_out(self.layers(self.project_in(x.transpose(1, 2)))).transpose(1, 2)


# --- builders (config node of an ``encoder`` / ``decoder`` object -> module) ----------------------------

_KEYS = ("in_channels", "out_channels", "embed_dims", "heads", "depths", "ratios", "local_attn_window_size",
         "ff_mult", "causal", "cond_dim", "cross_attn_cond_dim")


def _local_attn_kwargs(cfg: ConfigNode, default_dims: list[int]) -> dict:
    """Upstream's options; values it would crash on (or silently ignore) are keyed errors."""
    check_known_keys(cfg, _KEYS)
    for key in ("cond_dim", "cross_attn_cond_dim"):
        if cfg.get(key, "a non-negative int", 0):
            raise cfg.error("must be 0: an autoencoder's encoder and decoder get no conditioning to use it", key)
    embed_dims = positive_ints(cfg, "embed_dims", default_dims)
    heads = positive_ints(cfg, "heads", [12, 12, 12, 12])
    depths = cfg.get("depths", "a list of ints", [3, 3, 3, 3])
    ratios = positive_ints(cfg, "ratios", [2, 2, 2, 2])
    if not depths or any(d < 0 for d in depths):
        raise cfg.error(f"expected a non-empty list of non-negative ints, got {depths!r}", "depths")
    for key, values in (("embed_dims", embed_dims), ("heads", heads), ("ratios", ratios)):
        if len(values) != len(depths):
            raise cfg.error(f"has {len(values)} entries but depths has {len(depths)}; they must match", key)
    for i, (dim, head_count) in enumerate(zip(embed_dims, heads, strict=True)):
        if dim % head_count:
            raise cfg.error(f"stage {i}: {head_count} heads do not divide its width {dim} (embed_dims[{i}])", "heads")
    return {
        "in_channels": cfg.get("in_channels", "a positive int"),
        "out_channels": cfg.get("out_channels", "a positive int"),
        "embed_dims": embed_dims,
        "heads": heads,
        "depths": list(depths),
        "ratios": ratios,
        "local_attn_window_size": cfg.get("local_attn_window_size", "a positive int", 64),
        "ff_mult": cfg.get("ff_mult", "a positive number", 2),
        "causal": cfg.get("causal", "a bool", False),
    }


def build_local_attn_encoder(node: ConfigNode) -> TransformerEncoder1D:
    return TransformerEncoder1D(**_local_attn_kwargs(node.child("config", {}), [96, 192, 384, 768]))


def build_local_attn_decoder(node: ConfigNode) -> TransformerDecoder1D:
    return TransformerDecoder1D(**_local_attn_kwargs(node.child("config", {}), [768, 384, 192, 96]))


__all__ = [
    "LocalTransformer", "TransformerDecoder1D", "TransformerDownsampleBlock1D", "TransformerEncoder1D",
    "TransformerUpsampleBlock1D", "build_local_attn_decoder", "build_local_attn_encoder", "local_window",
]
