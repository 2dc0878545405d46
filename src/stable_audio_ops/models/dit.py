"""Diffusion Transformer (DiT) backbone with classifier-free guidance, stable-audio-tools 0.0.20 semantics.

Pipeline of one pass (:meth:`DiffusionTransformer.denoise`): condition tokens -> ``to_cond_embed``;
global vector -> ``to_global_embed``; ``t`` -> Fourier features -> ``to_timestep_embed`` (added to the
global embedding); input-concat channels appended to ``x``; residual 1x1 ``preprocess_conv``;
transformer (the global embedding is a prepended token or adaLN modulation); prepended tokens
stripped; residual 1x1 ``postprocess_conv``.

Guidance (:meth:`DiffusionTransformer.forward`), as 0.0.20 does it: one batch of ``[cond, uncond]``
where the uncond half has zeroed cross-attention and prepend tokens (or the negative prompt's tokens)
and the *same* global conditioning; the two outputs are turned into denoised estimates, combined there
(``cond + (scale - 1) * diff``), optionally with APG (adaptive projected guidance: only the part of
``diff`` orthogonal to the conditional estimate, computed per item over channels and time in float64),
and the result is converted back to the model's output parameterisation.

Deliberately reproduced upstream behaviour: the cross-attention mask is ignored (0.0.20 disables it
"due to a kernel issue"), so padded condition tokens - zero vectors - are attended to.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.models.step_cache import StepCache, cached
from stable_audio_ops.models.transformer import ContinuousTransformer

DIFFUSION_OBJECTIVES = ("v", "rectified_flow", "rf_denoiser")
GLOBAL_COND_TYPES = ("prepend", "adaLN")
TIMESTEP_COND_TYPES = ("global", "input_concat")


class FourierFeatures(nn.Module):
    """Random Fourier features of a scalar; ``weight`` is a persistent buffer (in checkpoints)."""

    def __init__(self, in_features: int, out_features: int, std: float = 16.0):
        super().__init__()
        if out_features % 2:
            raise ValueError(f"FourierFeatures needs an even out_features, got {out_features}")
        self.register_buffer("weight", torch.randn([out_features // 2, in_features]) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = 2 * math.pi * x @ self.weight.T
        return torch.cat([f.cos(), f.sin()], dim=-1)


def _mlp(dim_in: int, dim_out: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_out, bias=bias), nn.SiLU(), nn.Linear(dim_out, dim_out, bias=bias))


def apg_project(v0: torch.Tensor, v1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``v0`` into parts parallel and orthogonal to ``v1`` per batch item (over all other axes).

    Done in float64 like upstream: the orthogonal part is a small difference of large numbers.
    """
    dtype = v0.dtype
    v0, v1 = v0.double(), v1.double()
    dims = list(range(1, v0.dim()))
    unit = F.normalize(v1.flatten(1), dim=1).view_as(v1)
    parallel = (v0 * unit).sum(dim=dims, keepdim=True) * unit
    return parallel.to(dtype), (v0 - parallel).to(dtype)


class DiffusionTransformer(nn.Module):
    """The DiT. Attribute names match upstream (``timestep_features.weight``, ``to_cond_embed.*``, ...)."""

    def __init__(self, io_channels: int = 32, patch_size: int = 1, embed_dim: int = 768, cond_token_dim: int = 0,
                 project_cond_tokens: bool = True, global_cond_dim: int = 0, project_global_cond: bool = True,
                 input_concat_dim: int = 0, prepend_cond_dim: int = 0, depth: int = 12, num_heads: int = 8,
                 transformer_type: str = "continuous_transformer", global_cond_type: str = "prepend",
                 timestep_cond_type: str = "global", timestep_embed_dim: int | None = None,
                 diffusion_objective: str = "v", timestep_features_dim: int = 256,
                 timestep_features_logsnr: bool = False, **transformer_kwargs: Any):
        super().__init__()
        if transformer_type != "continuous_transformer":
            raise ValueError(f"transformer_type must be 'continuous_transformer', got {transformer_type!r}")
        if global_cond_type not in GLOBAL_COND_TYPES:
            raise ValueError(f"global_cond_type must be one of {GLOBAL_COND_TYPES}, got {global_cond_type!r}")
        if timestep_cond_type not in TIMESTEP_COND_TYPES:
            raise ValueError(f"timestep_cond_type must be one of {TIMESTEP_COND_TYPES}, got {timestep_cond_type!r}")
        if diffusion_objective not in DIFFUSION_OBJECTIVES:
            raise ValueError(f"diffusion_objective must be one of {DIFFUSION_OBJECTIVES}, got {diffusion_objective!r}")
        if transformer_kwargs.get("causal", False):
            raise ValueError("causal attention is not supported by the DiT")

        self.io_channels = io_channels
        self.cond_token_dim = cond_token_dim
        self.timestep_cond_type = timestep_cond_type
        self.timestep_features_logsnr = timestep_features_logsnr
        self.diffusion_objective = diffusion_objective
        self.global_cond_type = global_cond_type
        self.patch_size = patch_size
        self.transformer_type = transformer_type

        self.timestep_features = FourierFeatures(1, timestep_features_dim)
        if timestep_cond_type == "global":
            timestep_embed_dim = embed_dim
        elif timestep_embed_dim is None:
            raise ValueError("timestep_embed_dim is required when timestep_cond_type is 'input_concat'")
        else:
            input_concat_dim += timestep_embed_dim
        self.to_timestep_embed = _mlp(timestep_features_dim, timestep_embed_dim, bias=True)

        cond_embed_dim = 0
        if cond_token_dim > 0:
            cond_embed_dim = embed_dim if project_cond_tokens else cond_token_dim
            self.to_cond_embed = nn.Sequential(nn.Linear(cond_token_dim, cond_embed_dim, bias=False), nn.SiLU(),
                                               nn.Linear(cond_embed_dim, cond_embed_dim, bias=False))
        if global_cond_dim > 0:
            global_embed_dim = embed_dim if project_global_cond else global_cond_dim
            self.to_global_embed = nn.Sequential(nn.Linear(global_cond_dim, global_embed_dim, bias=False),
                                                 nn.SiLU(), nn.Linear(global_embed_dim, global_embed_dim, bias=False))
        if prepend_cond_dim > 0:
            self.to_prepend_embed = _mlp(prepend_cond_dim, embed_dim, bias=False)

        self.input_concat_dim = input_concat_dim
        dim_in = io_channels + input_concat_dim
        self.transformer = ContinuousTransformer(
            dim=embed_dim, depth=depth, dim_heads=embed_dim // num_heads, dim_in=dim_in * patch_size,
            dim_out=io_channels * patch_size, cross_attend=cond_token_dim > 0, cond_token_dim=cond_embed_dim,
            global_cond_dim=embed_dim if global_cond_type == "adaLN" else None, **transformer_kwargs)
        self.preprocess_conv = nn.Conv1d(dim_in, dim_in, 1, bias=False)
        nn.init.zeros_(self.preprocess_conv.weight)
        self.postprocess_conv = nn.Conv1d(io_channels, io_channels, 1, bias=False)
        nn.init.zeros_(self.postprocess_conv.weight)
        self._step_caches: dict[int, StepCache] = {}  # per thread: a server may generate in several

    @contextlib.contextmanager
    def reuse_step_invariants(self) -> Iterator[StepCache]:
        """For one generation (weights fixed): what depends only on the conditioning - the CFG batch of
        ``[cond, uncond]`` inputs, the projected condition tokens and global embedding, every layer's
        cross-attention keys/values, the rotary tables - is computed at the first sampler step and reused at
        the others (:mod:`~stable_audio_ops.models.step_cache`; results bitwise unchanged)."""
        key = threading.get_ident()
        outer = self._step_caches.get(key)
        cache = outer if outer is not None else StepCache()
        self._step_caches[key] = cache
        try:
            yield cache
        finally:
            if outer is None:
                self._step_caches.pop(key, None)

    def _active_cache(self) -> StepCache | None:
        caches = getattr(self, "_step_caches", None)  # absent on a model unpickled from an older version
        return caches.get(threading.get_ident()) if caches else None

    # normalised log-SNR timestep conditioning (timestep_features_logsnr): log((1-t)/t) in [-12, 5] -> [0, 1]
    _LOGSNR_MIN, _LOGSNR_MAX = -12.0, 5.0

    def _timestep_input(self, t: torch.Tensor) -> torch.Tensor:
        if not self.timestep_features_logsnr:
            return t
        tc = t.float().clamp(1e-7, 1 - 1e-7)
        logsnr = torch.log((1 - tc) / tc).clamp(self._LOGSNR_MIN, self._LOGSNR_MAX)
        return ((self._LOGSNR_MAX - logsnr) / (self._LOGSNR_MAX - self._LOGSNR_MIN)).to(t.dtype)

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cross_attn_cond: torch.Tensor | None = None,
                input_concat_cond: torch.Tensor | None = None, global_embed: torch.Tensor | None = None,
                prepend_cond: torch.Tensor | None = None, return_info: bool = False,
                exit_layer_ix: int | None = None, cache: StepCache | None = None):
        """One network pass without guidance (upstream ``_forward``); ``cache`` as in :meth:`forward`."""
        if cross_attn_cond is not None:
            cond = cross_attn_cond
            cross_attn_cond = cached(cache, "cond_embed", (cond,), lambda: self.to_cond_embed(cond))
        if global_embed is not None:
            glob = global_embed
            global_embed = cached(cache, "global_embed", (glob,), lambda: self.to_global_embed(glob))

        prepend_inputs = None
        prepend_length = 0
        if prepend_cond is not None:
            prepend = prepend_cond
            prepend_inputs = cached(cache, "prepend_embed", (prepend,), lambda: self.to_prepend_embed(prepend))
            prepend_length = prepend_inputs.shape[1]

        if input_concat_cond is not None:
            if input_concat_cond.shape[2] != x.shape[2]:
                input_concat_cond = F.interpolate(input_concat_cond, (x.shape[2],), mode="nearest")
            x = torch.cat([x, input_concat_cond], dim=1)

        t_in = self._timestep_input(t).to(x.dtype)
        timestep_embed = self.to_timestep_embed(self.timestep_features(t_in[:, None]))
        if self.timestep_cond_type == "global":
            global_embed = timestep_embed if global_embed is None else global_embed + timestep_embed
        else:
            x = torch.cat([x, timestep_embed.unsqueeze(2).expand(-1, -1, x.shape[2])], dim=1)

        if self.global_cond_type == "prepend" and global_embed is not None:
            token = global_embed.unsqueeze(1)
            prepend_inputs = token if prepend_inputs is None else torch.cat([prepend_inputs, token], dim=1)
            prepend_length = prepend_inputs.shape[1]

        x = self.preprocess_conv(x) + x
        x = x.transpose(1, 2)  # b c t -> b t c
        if self.patch_size > 1:
            b, n, c = x.shape
            # b (t p) c -> b t (c p)
            x = x.reshape(b, n // self.patch_size, self.patch_size, c).permute(0, 1, 3, 2).reshape(
                b, n // self.patch_size, c * self.patch_size)

        result = self.transformer(x, context=cross_attn_cond, prepend_embeds=prepend_inputs,
                                  global_cond=global_embed if self.global_cond_type == "adaLN" else None,
                                  return_info=return_info, exit_layer_ix=exit_layer_ix, cache=cache)
        if exit_layer_ix is not None:
            return result
        output, info = result if return_info else (result, None)

        output = output.transpose(1, 2)[:, :, prepend_length:]  # b t c -> b c t
        if self.patch_size > 1:
            b, cp, n = output.shape
            # b (c p) t -> b c (t p)
            output = output.reshape(b, cp // self.patch_size, self.patch_size, n).permute(0, 1, 3, 2).reshape(
                b, cp // self.patch_size, n * self.patch_size)
        output = self.postprocess_conv(output) + output
        return (output, info) if return_info else output

    @staticmethod
    def _cfg_batch(cross_attn_cond: torch.Tensor | None, negative_cross_attn_cond: torch.Tensor | None,
                   negative_cross_attn_mask: torch.Tensor | None, input_concat_cond: torch.Tensor | None,
                   global_embed: torch.Tensor | None, prepend_cond: torch.Tensor | None):
        """Conditioning of the ``[cond, uncond]`` batch: cross-attention tokens against the negative prompt's
        (masked) or zeros, prepend tokens against zeros; input-concat and global conditioning twice."""

        def twice(v: torch.Tensor | None) -> torch.Tensor | None:
            return None if v is None else torch.cat([v, v], dim=0)

        batch_cond = None
        if cross_attn_cond is not None:
            if negative_cross_attn_cond is not None:
                null = negative_cross_attn_cond
                if negative_cross_attn_mask is not None:
                    keep = negative_cross_attn_mask.to(torch.bool).unsqueeze(-1)
                    null = torch.where(keep, null, torch.zeros_like(null))
            else:
                null = torch.zeros_like(cross_attn_cond)
            batch_cond = torch.cat([cross_attn_cond, null], dim=0)
        batch_prepend = None
        if prepend_cond is not None:
            batch_prepend = torch.cat([prepend_cond, torch.zeros_like(prepend_cond)], dim=0)
        return batch_cond, twice(input_concat_cond), twice(global_embed), batch_prepend

    def _noise_levels(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, sigma) of the objective at ``t``: v uses the trig schedule, RF ``x_t = (1-t) x + t eps``."""
        if self.diffusion_objective == "v":
            return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)
        return torch.ones_like(t), t

    def forward(self, x: torch.Tensor, t: torch.Tensor, cross_attn_cond: torch.Tensor | None = None,
                cross_attn_cond_mask: torch.Tensor | None = None,
                negative_cross_attn_cond: torch.Tensor | None = None,
                negative_cross_attn_mask: torch.Tensor | None = None,
                input_concat_cond: torch.Tensor | None = None, global_embed: torch.Tensor | None = None,
                negative_global_embed: torch.Tensor | None = None, prepend_cond: torch.Tensor | None = None,
                prepend_cond_mask: torch.Tensor | None = None, cfg_scale: float = 1.0,
                cfg_dropout_prob: float = 0.0, cfg_interval: tuple[float, float] = (0, 1), scale_phi: float = 0.0,
                apg_scale: float = 1.0, cfg_norm_threshold: float = 0.0, return_info: bool = False, exit_layer_ix: int | None = None):
        """Model output (v or RF velocity) with optional CFG; see the module docstring.

        ``cross_attn_cond_mask`` and ``prepend_cond_mask`` are accepted and ignored (0.0.20 behaviour);
        ``negative_global_embed`` is accepted and unused (the uncond half keeps the global conditioning).
        Inside :meth:`reuse_step_invariants` the conditioning-only work is done once per generation.
        """
        cache = self._active_cache()
        dtype = next(self.parameters()).dtype
        x = x.to(dtype)
        t = t.float()
        if t.dim() == 0:
            t = t.expand(x.shape[0])

        def cast(v: torch.Tensor | None) -> torch.Tensor | None:
            return None if v is None else v.to(dtype)

        cross_attn_cond, negative_cross_attn_cond = cast(cross_attn_cond), cast(negative_cross_attn_cond)
        input_concat_cond, global_embed, prepend_cond = cast(input_concat_cond), cast(global_embed), cast(prepend_cond)

        if exit_layer_ix is not None:
            return self.denoise(x, t, cross_attn_cond, input_concat_cond, global_embed, prepend_cond,
                                return_info=return_info, exit_layer_ix=exit_layer_ix, cache=cache)

        if cfg_dropout_prob > 0.0 and cfg_scale == 1.0:
            # training-time CFG dropout: per item, replace the tokens by the null (zero) condition
            if cross_attn_cond is not None:
                drop = torch.bernoulli(torch.full((cross_attn_cond.shape[0], 1, 1), cfg_dropout_prob,
                                                  device=cross_attn_cond.device)).bool()
                cross_attn_cond = torch.where(drop, torch.zeros_like(cross_attn_cond), cross_attn_cond)
            if prepend_cond is not None:
                drop = torch.bernoulli(torch.full((prepend_cond.shape[0], 1, 1), cfg_dropout_prob,
                                                  device=prepend_cond.device)).bool()
                prepend_cond = torch.where(drop, torch.zeros_like(prepend_cond), prepend_cond)

        alpha, sigma = self._noise_levels(t)
        guided = (cfg_scale != 1.0 and (cross_attn_cond is not None or prepend_cond is not None)
                  and cfg_interval[0] <= float(sigma[0]) <= cfg_interval[1])
        if not guided:
            return self.denoise(x, t, cross_attn_cond, input_concat_cond, global_embed, prepend_cond,
                                return_info=return_info, cache=cache)

        inputs = (cross_attn_cond, negative_cross_attn_cond, negative_cross_attn_mask, input_concat_cond,
                  global_embed, prepend_cond)
        batch_cond, batch_concat, batch_global, batch_prepend = cached(
            cache, "cfg_batch", inputs, lambda: self._cfg_batch(*inputs))
        result = self.denoise(torch.cat([x, x], dim=0), torch.cat([t, t], dim=0), batch_cond,
                              batch_concat, batch_global, batch_prepend, return_info=return_info, cache=cache)
        batch_output, info = result if return_info else (result, None)
        cond_output, uncond_output = torch.chunk(batch_output, 2, dim=0)

        a, s = alpha[:, None, None], sigma[:, None, None]
        cond_denoised = x * a - cond_output * s
        uncond_denoised = x * a - uncond_output * s
        diff = cond_denoised - uncond_denoised
        if cfg_norm_threshold > 0:
            # cap the guidance direction's L2 norm (over channels and time) per item
            norm = diff.norm(p=2, dim=[-1, -2], keepdim=True)
            diff = diff * torch.minimum(torch.ones_like(diff), cfg_norm_threshold / norm)
        if apg_scale != 0.0:
            _, orthogonal = apg_project(diff, cond_denoised)
            diff = orthogonal if apg_scale == 1.0 else apg_scale * orthogonal + (1 - apg_scale) * diff
        cfg_denoised = cond_denoised + (cfg_scale - 1) * diff
        output = (x * a - cfg_denoised) / s

        if scale_phi != 0.0:
            # CFG rescale: pull the guided output's per-position std over channels back towards the cond one
            ratio = cond_output.std(dim=1, keepdim=True) / output.std(dim=1, keepdim=True)
            output = scale_phi * (output * ratio) + (1 - scale_phi) * output

        if return_info:
            info["uncond_output"] = uncond_output
            return output, info
        return output


__all__ = ["DIFFUSION_OBJECTIVES", "DiffusionTransformer", "FourierFeatures", "apg_project"]
