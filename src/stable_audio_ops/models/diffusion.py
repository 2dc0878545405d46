"""Conditioned latent diffusion model: conditioner + DiT backbone (+ pretransform), 0.0.20 semantics.

``ConditionedDiffusionModelWrapper`` owns ``model`` (the :class:`DiTWrapper`), ``conditioner`` and
``pretransform``; its state-dict keys are therefore ``model.model.*``, ``conditioner.conditioners.*``
and ``pretransform.model.*`` exactly as upstream. ``get_conditioning_inputs`` turns conditioner
outputs into the backbone's keyword arguments (upstream names: ``cross_attn_cond``, ``cross_attn_mask``,
``global_cond``, ``input_concat_cond``, ``prepend_cond``, ``prepend_cond_mask`` and their
``negative_*`` forms), so ``model(x, t, cond) == model.model(x, t, **model.get_conditioning_inputs(cond))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from stable_audio_ops.models.conditioners import MultiConditioner
from stable_audio_ops.models.dit import DIFFUSION_OBJECTIVES, DiffusionTransformer
from stable_audio_ops.sampling.schedules import create_dist_shift, default_sampling_dist_shift

_UNSUPPORTED_NON_NONE = ("local_add_cond", "modular_local_cond", "padding_mask", "mask")


class DiTWrapper(nn.Module):
    """Adapts the conditioning dict of :meth:`ConditionedDiffusionModelWrapper.get_conditioning_inputs`
    to :class:`DiffusionTransformer` (``global_cond`` -> ``global_embed``, ``cross_attn_mask`` ->
    ``cross_attn_cond_mask``). The contract names (``cross_attn_cond_mask``, ``global_embed``,
    ``negative_global_embed``) are accepted too. Always batch CFG, as upstream asserts.
    """

    def __init__(self, diffusion_objective: str = "v", **dit_kwargs: Any):
        super().__init__()
        self.diffusion_objective = diffusion_objective
        self.model = DiffusionTransformer(diffusion_objective=diffusion_objective, **dit_kwargs)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cross_attn_cond: torch.Tensor | None = None,
                cross_attn_mask: torch.Tensor | None = None, negative_cross_attn_cond: torch.Tensor | None = None,
                negative_cross_attn_mask: torch.Tensor | None = None, input_concat_cond: torch.Tensor | None = None,
                global_cond: torch.Tensor | None = None, negative_global_cond: torch.Tensor | None = None,
                prepend_cond: torch.Tensor | None = None, prepend_cond_mask: torch.Tensor | None = None,
                cfg_scale: float = 1.0, cfg_dropout_prob: float = 0.0, batch_cfg: bool = True,
                rescale_cfg: bool = False, scale_phi: float = 0.0, apg_scale: float = 1.0,
                cfg_interval: tuple[float, float] = (0, 1), cfg_norm_threshold: float = 0.0,
                negative_input_concat_cond: torch.Tensor | None = None,
                cross_attn_cond_mask: torch.Tensor | None = None, global_embed: torch.Tensor | None = None,
                negative_global_embed: torch.Tensor | None = None, return_info: bool = False,
                exit_layer_ix: int | None = None,
                **kwargs: Any) -> torch.Tensor | tuple[torch.Tensor, dict]:
        """``rescale_cfg`` and ``negative_input_concat_cond`` are accepted and ignored, as upstream (the
        DiT's CFG rescale is ``scale_phi``; the uncond half reuses the input-concat conditioning).
        ``exit_layer_ix`` returns the hidden states after that transformer block (ARC's discriminator)."""
        if not batch_cfg:
            raise ValueError("the DiT only supports batch CFG (batch_cfg=True)")
        for name, value in kwargs.items():
            if value is not None:
                if name in _UNSUPPORTED_NON_NONE:
                    raise TypeError(f"DiTWrapper: {name} is not supported by this implementation")
                raise TypeError(f"DiTWrapper got an unexpected argument {name!r}")
        return self.model(
            x, t,
            cross_attn_cond=cross_attn_cond,
            cross_attn_cond_mask=cross_attn_mask if cross_attn_mask is not None else cross_attn_cond_mask,
            negative_cross_attn_cond=negative_cross_attn_cond,
            negative_cross_attn_mask=negative_cross_attn_mask,
            input_concat_cond=input_concat_cond,
            global_embed=global_cond if global_cond is not None else global_embed,
            negative_global_embed=negative_global_cond if negative_global_cond is not None else negative_global_embed,
            prepend_cond=prepend_cond,
            prepend_cond_mask=prepend_cond_mask,
            cfg_scale=cfg_scale,
            cfg_dropout_prob=cfg_dropout_prob,
            cfg_interval=cfg_interval,
            scale_phi=scale_phi,
            apg_scale=apg_scale,
            cfg_norm_threshold=cfg_norm_threshold,
            return_info=return_info,  # CFG++ samplers need the unconditional estimate
            exit_layer_ix=exit_layer_ix,
        )


def _as_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if mask is None:  # pre-encoded inputs carry no mask: every token is valid
        return torch.ones(like.shape[:2], device=like.device)
    return mask


def _cat_masks(masks: list[torch.Tensor]) -> torch.Tensor:
    if any(m.dtype != torch.bool for m in masks):
        masks = [m.float() for m in masks]
    return torch.cat(masks, dim=1)


class ConditionedDiffusionModelWrapper(nn.Module):
    """A conditioned diffusion model (``diffusion_cond`` / ``diffusion_cond_inpaint``).

    ``sampling_dist_shift`` is the inference-time timestep warp (``sampling_distribution_shift_options``,
    default ``LogSNRShift(rate=0, anchor_logsnr=-6.2, logsnr_end=2.0)`` as in 0.0.20); ``dist_shift`` the
    training one (``distribution_shift_options``) or None. The shift classes live with the schedules in
    :mod:`stable_audio_ops.sampling.schedules`.
    """

    def __init__(self, model: nn.Module, conditioner: MultiConditioner | None, io_channels: int, sample_rate: int,
                 min_input_length: int, diffusion_objective: str = "v", pretransform: nn.Module | None = None,
                 cross_attn_cond_ids: Sequence[str] = (), global_cond_ids: Sequence[str] = (),
                 input_concat_ids: Sequence[str] = (), prepend_cond_ids: Sequence[str] = (),
                 distribution_shift_options: Mapping[str, Any] | None = None,
                 sampling_distribution_shift_options: Mapping[str, Any] | None = None):
        super().__init__()
        if diffusion_objective not in DIFFUSION_OBJECTIVES:
            raise ValueError(f"diffusion_objective must be one of {DIFFUSION_OBJECTIVES}, got {diffusion_objective!r}")
        self.model = model
        self.conditioner = conditioner
        self.io_channels = io_channels
        self.sample_rate = sample_rate
        self.min_input_length = min_input_length
        self.diffusion_objective = diffusion_objective
        self.pretransform = pretransform
        self.cross_attn_cond_ids = list(cross_attn_cond_ids)
        self.global_cond_ids = list(global_cond_ids)
        self.input_concat_ids = list(input_concat_ids)
        self.prepend_cond_ids = list(prepend_cond_ids)
        # kept as plain dicts too, so the config that built the shifts stays inspectable
        self.distribution_shift_options = dict(distribution_shift_options) if distribution_shift_options else None
        self.sampling_distribution_shift_options = (dict(sampling_distribution_shift_options)
                                                    if sampling_distribution_shift_options else None)
        self.dist_shift = (create_dist_shift(self.distribution_shift_options)
                           if self.distribution_shift_options else None)
        self.sampling_dist_shift = (create_dist_shift(self.sampling_distribution_shift_options)
                                    if self.sampling_distribution_shift_options else default_sampling_dist_shift())

    def get_conditioning_inputs(self, conditioning_tensors: Mapping[str, Any], negative: bool = False) -> dict:
        """Backbone kwargs from ``{id: [tensor, mask]}``.

        Cross-attention inputs are concatenated on the token axis (2-D outputs get a length-1 token
        axis), global inputs on the feature axis (then squeezed to ``[B, C]``), input-concat inputs on
        the channel axis, prepend inputs on the token axis, each in its configured id order.
        """
        def get(key: str) -> Sequence[Any]:
            if key not in conditioning_tensors:
                raise KeyError(f"conditioning has no entry {key!r} (has: {', '.join(map(str, conditioning_tensors))})")
            return conditioning_tensors[key]

        cross_attn_cond = cross_attn_mask = global_cond = input_concat_cond = None
        prepend_cond = prepend_cond_mask = None

        if self.cross_attn_cond_ids:
            tokens, masks = [], []
            for key in self.cross_attn_cond_ids:
                tensor, mask = get(key)[0], get(key)[1]
                if tensor.dim() == 2:  # one vector per item -> a single token
                    tensor = tensor.unsqueeze(1)
                    mask = mask.unsqueeze(1) if mask is not None else None
                mask = _as_mask(mask, tensor)
                tokens.append(tensor)
                masks.append(mask)
            cross_attn_cond = torch.cat(tokens, dim=1)
            cross_attn_mask = _cat_masks(masks)

        if self.global_cond_ids:
            global_cond = torch.cat([get(key)[0] for key in self.global_cond_ids], dim=-1)
            if global_cond.dim() == 3:
                global_cond = global_cond.squeeze(1)

        if self.input_concat_ids:
            input_concat_cond = torch.cat([get(key)[0] for key in self.input_concat_ids], dim=1)

        if self.prepend_cond_ids:
            tokens = [get(key)[0] for key in self.prepend_cond_ids]
            masks = [_as_mask(get(key)[1], tokens[i]) for i, key in enumerate(self.prepend_cond_ids)]
            prepend_cond = torch.cat(tokens, dim=1)
            prepend_cond_mask = _cat_masks(masks)

        if negative:
            return {
                "negative_cross_attn_cond": cross_attn_cond,
                "negative_cross_attn_mask": cross_attn_mask,
                "negative_global_cond": global_cond,
                "negative_input_concat_cond": input_concat_cond,
            }
        return {
            "cross_attn_cond": cross_attn_cond,
            "cross_attn_mask": cross_attn_mask,
            "global_cond": global_cond,
            "input_concat_cond": input_concat_cond,
            "prepend_cond": prepend_cond,
            "prepend_cond_mask": prepend_cond_mask,
        }

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Mapping[str, Any], **kwargs: Any) -> torch.Tensor:
        return self.model(x, t, **self.get_conditioning_inputs(cond), **kwargs)


__all__ = ["ConditionedDiffusionModelWrapper", "DiTWrapper"]
