"""ADP U-Nets as ``diffusion_cond`` backbones: ``adp_cfg_1d`` (cross-attention + CFG) and ``adp_1d``.

Both wrappers take the conditioning keywords of
:meth:`~stable_audio_ops.models.diffusion.ConditionedDiffusionModelWrapper.get_conditioning_inputs`
(``cross_attn_cond``/``cross_attn_mask`` -> the U-Net's ``embedding``/``embedding_mask``,
``global_cond`` -> ``features``, ``input_concat_cond`` -> level-0 context channels) and hold the U-Net
as ``model``, so checkpoint keys are ``model.model.*`` as in stable-audio-tools. Fresh U-Net weights are
halved, as upstream.

Guidance (``adp_cfg_1d``): the unconditional pass replaces the condition tokens by a *learned* null
sequence, ``fixed_embedding`` (rows ``0..M-1`` of an ``nn.Embedding``), not by zeros as the DiT does;
``out = uncond + (cond - uncond) * cfg_scale``, optionally rescaled towards the conditional output's
per-position standard deviation over channels (``rescale_cfg``, weight ``scale_phi``). Plain CFG on
the model output: no APG.

Differences from stable-audio-tools 0.0.20, where the ``adp_cfg_1d`` wrapper call fails
(``get_conditioning_inputs`` always passes ``modular_local_cond``, which the U-Net rejects) and so does
generation: here the wrapper accepts the keys that do not apply to it when they are unset, and the
DiT-only guidance options the samplers always pass (``apg_scale``, ``cfg_interval``) are accepted and
have no effect; any other unknown argument is an error naming it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stable_audio_ops.models.adp import UNet1d, hold_unet

# keys the conditioned wrapper receives and ignores when they are None (no such conditioning here)
_UNUSED_IF_NONE = ("prepend_cond", "prepend_cond_mask", "negative_global_cond", "negative_input_concat_cond",
                   "local_add_cond", "modular_local_cond")
# DiT guidance options that generation passes to every backbone; plain CFG has no use for them
_DIT_ONLY = ("apg_scale", "cfg_interval", "cfg_norm_threshold")
# guidance options of a backbone with cross-attention; without it (adp_1d) they have nothing to act on
_GUIDANCE = ("cross_attn_mask", "cfg_scale", "cfg_dropout_prob", "batch_cfg", "rescale_cfg", "scale_phi",
             "negative_cross_attn_cond", "negative_cross_attn_mask")


class FixedEmbedding(nn.Module):
    """The learned null condition: rows ``0..n-1`` of ``embedding`` for an ``n``-token condition."""

    def __init__(self, max_length: int, features: int):
        super().__init__()
        self.max_length = max_length
        self.embedding = nn.Embedding(max_length, features)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, length = tokens.shape[:2]
        if length > self.max_length:
            raise ValueError(f"{length} condition tokens exceed context_embedding_max_length {self.max_length}")
        rows = self.embedding(torch.arange(length, device=tokens.device))
        return rows.unsqueeze(0).expand(batch, -1, -1)


class UNetCFG1d(UNet1d):
    """:class:`UNet1d` with cross-attention to condition tokens and classifier-free guidance."""

    def __init__(self, context_embedding_max_length: int, context_embedding_features: int, **unet_kwargs: Any):
        super().__init__(context_embedding_features=context_embedding_features, **unet_kwargs)
        self.fixed_embedding = FixedEmbedding(context_embedding_max_length, context_embedding_features)

    def forward(self, x: torch.Tensor, time: torch.Tensor | None = None, *, embedding: torch.Tensor,  # type: ignore[override]
                embedding_mask: torch.Tensor | None = None, embedding_scale: float = 1.0,
                embedding_mask_proba: float = 0.0, batch_cfg: bool = False, rescale_cfg: bool = False,
                scale_phi: float = 0.4, negative_embedding: torch.Tensor | None = None,
                negative_embedding_mask: torch.Tensor | None = None, features: torch.Tensor | None = None,
                channels_list: list[torch.Tensor] | None = None) -> torch.Tensor:
        null = self.fixed_embedding(embedding)
        if embedding_mask_proba > 0.0:  # training-time CFG dropout, per item
            drop = torch.rand(embedding.shape[0], 1, 1, device=embedding.device) < embedding_mask_proba
            embedding = torch.where(drop, null, embedding)
        context = {"features": features, "channels_list": channels_list}
        if embedding_scale == 1.0:
            return super().forward(x, time, embedding=embedding, embedding_mask=embedding_mask, **context)

        uncond_embedding = null
        if negative_embedding is not None:
            uncond_embedding = negative_embedding
            if negative_embedding_mask is not None:
                keep = negative_embedding_mask.to(torch.bool).unsqueeze(2)
                uncond_embedding = torch.where(keep, negative_embedding, null)
        if batch_cfg:
            def twice(v: torch.Tensor | None) -> torch.Tensor | None:
                return None if v is None else torch.cat([v, v], dim=0)

            out = super().forward(
                twice(x), twice(time), embedding=torch.cat([embedding, uncond_embedding], dim=0),
                embedding_mask=twice(embedding_mask), features=twice(features),
                channels_list=None if channels_list is None else [twice(c) for c in channels_list])
            cond, uncond = out.chunk(2, dim=0)
        else:
            cond = super().forward(x, time, embedding=embedding, embedding_mask=embedding_mask, **context)
            uncond = super().forward(x, time, embedding=uncond_embedding, embedding_mask=embedding_mask, **context)
        guided = uncond + (cond - uncond) * embedding_scale
        if not rescale_cfg:
            return guided
        ratio = cond.std(dim=1, keepdim=True) / guided.std(dim=1, keepdim=True)
        return scale_phi * (guided * ratio) + (1 - scale_phi) * guided


def _check_extra(owner: str, kwargs: dict[str, Any], ignored: tuple[str, ...] = ()) -> None:
    """Accept what a backbone may be handed but cannot use (see the module docstring); name the rest."""
    for name, value in kwargs.items():
        if name in _DIT_ONLY or name in ignored or (name in _UNUSED_IF_NONE and value is None):
            continue
        if name in _UNUSED_IF_NONE:
            raise TypeError(f"{owner}: {name} is not supported by this backbone")
        raise TypeError(f"{owner} got an unexpected argument {name!r}")


class UNetCFG1DWrapper(nn.Module):
    """``adp_cfg_1d``: see the module docstring."""

    def __init__(self, unet: UNetCFG1d):
        super().__init__()
        hold_unet(self, unet)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cross_attn_cond: torch.Tensor | None = None,
                cross_attn_mask: torch.Tensor | None = None, input_concat_cond: torch.Tensor | None = None,
                global_cond: torch.Tensor | None = None, cfg_scale: float = 1.0, cfg_dropout_prob: float = 0.0,
                batch_cfg: bool = False, rescale_cfg: bool = False, scale_phi: float | None = None,
                negative_cross_attn_cond: torch.Tensor | None = None,
                negative_cross_attn_mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """``scale_phi`` (default 0.4, upstream's U-Net default) only acts with ``rescale_cfg``."""
        _check_extra("UNetCFG1DWrapper", kwargs)
        if cross_attn_cond is None:
            raise ValueError("adp_cfg_1d needs cross-attention conditioning (model.diffusion.cross_attention_cond_ids)")
        return self.model(x, t, embedding=cross_attn_cond, embedding_mask=cross_attn_mask, features=global_cond,
                          channels_list=None if input_concat_cond is None else [input_concat_cond],
                          embedding_scale=cfg_scale, embedding_mask_proba=cfg_dropout_prob, batch_cfg=batch_cfg,
                          rescale_cfg=rescale_cfg, scale_phi=0.4 if scale_phi is None else scale_phi,
                          negative_embedding=negative_cross_attn_cond,
                          negative_embedding_mask=negative_cross_attn_mask)


class UNet1DCondWrapper(nn.Module):
    """``adp_1d`` under ``diffusion_cond``: global features and input-concat channels (nearest-resized
    to the input length), no cross-attention, so guidance settings have nothing to act on."""

    def __init__(self, unet: UNet1d):
        super().__init__()
        hold_unet(self, unet)

    def forward(self, x: torch.Tensor, t: torch.Tensor, input_concat_cond: torch.Tensor | None = None,
                global_cond: torch.Tensor | None = None, cross_attn_cond: torch.Tensor | None = None,
                **kwargs: Any) -> torch.Tensor:
        _check_extra("UNet1DCondWrapper", kwargs, ignored=_GUIDANCE)
        if cross_attn_cond is not None:
            raise ValueError("adp_1d has no cross-attention; use global_cond_ids / input_concat_ids")
        channels_list = None
        if input_concat_cond is not None:
            if input_concat_cond.shape[2] != x.shape[2]:
                input_concat_cond = F.interpolate(input_concat_cond, (x.shape[2],), mode="nearest")
            channels_list = [input_concat_cond]
        return self.model(x, t, features=global_cond, channels_list=channels_list)


__all__ = ["FixedEmbedding", "UNet1DCondWrapper", "UNetCFG1DWrapper", "UNetCFG1d"]
