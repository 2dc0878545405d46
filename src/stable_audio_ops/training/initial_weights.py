"""The weights a training run starts from: ``--pretrained-ckpt-path`` (the whole model) and
``--pretransform-ckpt-path`` (a frozen autoencoder inside a diffusion model), in upstream's order.

Differences from upstream, and why: the pretrained checkpoint loads strictly unless
``--pretrained-ckpt-strict false`` (upstream silently skips what does not fit, which hides a wrong file);
the pretransform loads through the model loader's strict step
(:func:`~stable_audio_ops.models.loading.load_weights_into`), so it accepts a model folder as well as a file
and fails like every other model load.
"""

from __future__ import annotations

import logging

import torch
from torch.nn.utils import remove_weight_norm

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.checkpoints import copy_state_dict, load_ckpt_state_dict, load_state_dict_checked
from stable_audio_ops.models.loading import load_weights_into
from stable_audio_ops.training.options import TrainOptions

log = logging.getLogger(__name__)


def remove_weight_norm_everywhere(module: torch.nn.Module) -> int:
    """Strip legacy weight norm from every submodule that has it; returns how many were stripped."""
    count = 0
    for sub in module.modules():
        if hasattr(sub, "weight_g") and hasattr(sub, "weight_v"):
            remove_weight_norm(sub)
            count += 1
    return count


def load_pretrained(model: torch.nn.Module, options: TrainOptions) -> None:
    """``--pretrained-ckpt-path``: strict, or a logged partial copy with ``--pretrained-ckpt-strict false``."""
    state = load_ckpt_state_dict(options.pretrained_ckpt_path)
    what = f"--pretrained-ckpt-path {options.pretrained_ckpt_path}"
    if options.pretrained_ckpt_strict:
        report = load_state_dict_checked(model, state, strict=True, what=what)
    else:
        report = copy_state_dict(model, state)
    log.info("%s: %s", what, report.format())


def load_pretransform(model: torch.nn.Module, options: TrainOptions) -> None:
    """``--pretransform-ckpt-path`` into ``model.pretransform``, with weight norm stripped before
    (``pre_load``: the file must be weight-norm-free) or after (``post_load``) as
    ``--remove-pretransform-weight-norm`` says."""
    mode = options.remove_pretransform_weight_norm
    pretransform = getattr(model, "pretransform", None)
    if (options.pretransform_ckpt_path or mode in ("pre_load", "post_load")) and pretransform is None:
        raise ConfigError(options.model_config, "model.pretransform",
                          "--pretransform-ckpt-path / --remove-pretransform-weight-norm need a model with a pretransform")
    if mode == "pre_load":
        log.info("removed weight norm from %d pretransform modules", remove_weight_norm_everywhere(pretransform))
    if options.pretransform_ckpt_path:
        load_weights_into(pretransform, options.pretransform_ckpt_path,
                          what=f"--pretransform-ckpt-path {options.pretransform_ckpt_path}")
    if mode == "post_load":
        log.info("removed weight norm from %d pretransform modules", remove_weight_norm_everywhere(pretransform))


def load_initial_weights(model: torch.nn.Module, options: TrainOptions) -> None:
    """``--pretrained-ckpt-path``, then ``--pretransform-ckpt-path`` (+ weight-norm removal), as upstream orders them."""
    if options.pretrained_ckpt_path:
        load_pretrained(model, options)
    load_pretransform(model, options)


__all__ = ["load_initial_weights", "load_pretrained", "load_pretransform", "remove_weight_norm_everywhere"]
