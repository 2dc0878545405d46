"""Turn a training (wrapped) checkpoint into a plain model checkpoint.

Upstream's ``unwrap_model.py`` rebuilds the whole training wrapper and loads the checkpoint with
``strict=False``, so a config that does not fit the checkpoint silently exports random weights, and it
needs ``training.use_ema`` / ``training.loss_configs`` to exist (KeyError otherwise). Here unwrapping is a
pure state-dict transformation chosen by ``model_type`` (keep one prefix, strip it, drop the rest),
followed by a STRICT load into a freshly built model, so any mismatch is an error that lists the keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from stable_audio_ops.config.schema import ConfigNode, lookup
from stable_audio_ops.errors import CheckpointError
from stable_audio_ops.models.checkpoints import load_state_dict_checked, save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.lora import lora_config_from_mapping, merge_lora_state_dict

log = logging.getLogger(__name__)

# model_type -> function(training node) -> the wrapper prefix that holds the weights to export, or a
# sequence of (wrapper prefix, model prefix) renames applied in order (later ones override earlier ones).
UnwrapRule = Callable[[ConfigNode], "str | Sequence[tuple[str, str]]"]


def _autoencoder_prefix(training: ConfigNode) -> str:
    # training.use_ema defaults to false for autoencoders (upstream's training factory default).
    use_ema = training.get("use_ema", "a bool", False)
    return "autoencoder_ema.ema_model." if use_ema else "autoencoder."


def _diffusion_cond_renames(training: ConfigNode) -> list[tuple[str, str]]:
    # The whole ConditionedDiffusionModelWrapper (conditioner + pretransform from the online wrapper), with
    # the backbone replaced by the EMA backbone when EMA is on (default true), as upstream's export_model.
    renames = [("diffusion.", "")]
    if training.get("use_ema", "a bool", True):
        renames.append(("diffusion_ema.ema_model.", "model."))
    return renames


def _lm_prefix(training: ConfigNode) -> str:
    # The whole AudioLanguageModelWrapper; its EMA copy when training.use_ema (default false, as upstream).
    return "model_ema.ema_model." if training.get("use_ema", "a bool", False) else "model."


def _diffusion_autoencoder_prefix(training: ConfigNode) -> str:
    # The EMA autoencoder (upstream's export_model); the online one when training.use_ema is false (ours).
    return "diffae_ema.ema_model." if training.get("use_ema", "a bool", True) else "diffae."


UNWRAP_RULES: dict[str, UnwrapRule] = {
    "autoencoder": _autoencoder_prefix,
    "diffusion_cond": _diffusion_cond_renames,
    "diffusion_cond_inpaint": _diffusion_cond_renames,
    # upstream's unconditional export: the wrapper with the EMA backbone swapped in (the same renames)
    "diffusion_uncond": _diffusion_cond_renames,
    "diffusion_autoencoder": _diffusion_autoencoder_prefix,
    "lm": _lm_prefix,
    "clap": lambda training: "model.",  # the CLAPTrainingModule holds the model as ``model`` (no EMA)
}

# Prefixes that mark a state dict as a training-wrapper state dict (any model type).
WRAPPER_PREFIXES = ("autoencoder.", "autoencoder_ema.", "discriminator.", "losses_gen.", "losses_disc.",
                    "diffusion.", "diffusion_ema.", "losses.", "teacher_model.", "discriminator_head.",
                    "diffae.", "diffae_ema.", "model_ema.")


def read_training_checkpoint(ckpt_path: str | Path) -> dict[str, Any]:
    """``torch.load`` a Lightning checkpoint safely (tensors and plain containers only)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        raise CheckpointError(
            f"{path}: a .safetensors file is an unwrapped model checkpoint already; "
            "unwrapping needs the training checkpoint (.ckpt) written by train.py"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file or an unsafe pickle: say which file
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no 'state_dict' mapping)")
    return ckpt


# EMA copy prefix -> (its update counter, what to export instead when it never updated)
_EMA_FALLBACKS = {
    "autoencoder_ema.ema_model.": ("autoencoder_ema.step", "autoencoder."),
    "diffusion_ema.ema_model.": ("diffusion_ema.step", None),  # None: the online backbone is already in diffusion.*
    "diffae_ema.ema_model.": ("diffae_ema.step", "diffae."),
    "model_ema.ema_model.": ("model_ema.step", "model."),
}


def _skip_untouched_ema(renames: list[tuple[str, str]], state_dict: dict[str, torch.Tensor],
                        ckpt_name: str) -> list[tuple[str, str]]:
    """Export the trained weights, not the initial ones, when the EMA copy was never updated.

    0.0.20's autoencoder EMA updates only every 10 global steps (:mod:`.autoencoder`), so a run shorter than
    that leaves the EMA copy at the initialisation, and upstream's export would write an untrained model. Here
    the online weights are exported instead, with a warning (a deliberate difference from 0.0.20).
    """
    kept: list[tuple[str, str]] = []
    for prefix, target in renames:
        counter, online = _EMA_FALLBACKS.get(prefix, (None, None))
        step = state_dict.get(counter) if counter else None
        if isinstance(step, torch.Tensor) and step.numel() == 1 and int(step) == 0:
            log.warning("%s: the EMA copy (%s*) was never updated (run shorter than the EMA's update interval): "
                        "exporting the trained online weights instead", ckpt_name or "checkpoint", prefix)
            if online is not None:
                kept.append((online, target))
            continue
        kept.append((prefix, target))
    return kept


def select_model_state_dict(
    model_config: dict, state_dict: dict[str, torch.Tensor], source: str = "<model config>", ckpt_name: str = ""
) -> dict[str, torch.Tensor]:
    """The model's own weights inside a wrapper state dict (prefix chosen by ``model_type``)."""
    root = ConfigNode(model_config, source)
    model_type = root.get("model_type", "a string")
    rule = lookup(UNWRAP_RULES, model_type, "model type for unwrapping", root, key="model_type")
    renames = rule(root.child("training", {}))
    if isinstance(renames, str):
        renames = [(renames, "")]
    renames = _skip_untouched_ema(list(renames), state_dict, ckpt_name)
    selected: dict[str, torch.Tensor] = {}
    prefix = renames[0][0]
    for prefix, target in renames:
        found = {target + k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not found:
            break
        selected.update(found)
    else:
        return selected
    wrapper_like = sorted({k.split(".")[0] + "." for k in state_dict if k.startswith(WRAPPER_PREFIXES)})
    if not wrapper_like:
        example = next(iter(state_dict), "<empty>")
        raise CheckpointError(
            f"{ckpt_name}: looks like an already-unwrapped model checkpoint (keys like {example!r}, no "
            "training-wrapper prefixes); unwrapping needs the training checkpoint written by train.py"
        )
    found = wrapper_like
    hint = ""
    online = {"autoencoder_ema.": "autoencoder.", "diffusion_ema.": "diffusion.", "diffae_ema.": "diffae.",
              "model_ema.": "model."}
    if any(prefix.startswith(ema) and plain in found for ema, plain in online.items()):
        hint = " (the run did not use EMA: set training.use_ema to false in the model config)"
    raise CheckpointError(
        f"{ckpt_name}: no keys under {prefix!r} (chosen from {source}: training.use_ema); "
        f"prefixes present: {', '.join(found)}{hint}"
    )


def output_checkpoint_path(output_path: str | Path, use_safetensors: bool = True) -> Path:
    """Add ``.safetensors``/``.ckpt`` when the path has neither; refuse a suffix that contradicts the flag."""
    path = Path(output_path)
    if path.suffix in (".safetensors", ".ckpt"):
        if (path.suffix == ".safetensors") != use_safetensors:
            fmt = "safetensors" if use_safetensors else "ckpt"
            raise ValueError(f"{path}: suffix does not match the requested format ({fmt})")
        return path
    return path.with_name(path.name + (".safetensors" if use_safetensors else ".ckpt"))


def unwrap_checkpoint(
    model_config: dict | None,
    ckpt_path: str | Path,
    output_path: str | Path,
    use_safetensors: bool = True,
    source: str = "<model config>",
) -> Path:
    """Write the plain model weights of training checkpoint ``ckpt_path`` to ``output_path``.

    ``model_config=None`` uses the config embedded in the checkpoint (train.py embeds it). The result is
    loaded strictly into a model built from the config before it is written (with the config embedded),
    so the file is known to load. A LoRA fine-tune (``training.lora``) is written merged: every adapter folded
    into its base weight, so the file is a plain upstream-format model. Returns the written path.
    """
    ckpt_path = Path(ckpt_path)
    ckpt = read_training_checkpoint(ckpt_path)
    if model_config is None:
        model_config = ckpt.get("model_config")
        source = f"{ckpt_path} (embedded model_config)"
        if not isinstance(model_config, dict):
            raise CheckpointError(f"{ckpt_path}: no embedded model_config; pass the model config")
    state_dict = select_model_state_dict(model_config, ckpt["state_dict"], source, str(ckpt_path))
    lora = (model_config.get("training") or {}).get("lora")
    if lora is not None:  # a LoRA fine-tune: the full model has its adapters folded in (upstream keys)
        state_dict = merge_lora_state_dict(state_dict, lora_config_from_mapping(lora, source, "training.lora"))

    model = create_model_from_config(model_config, source=source)
    load_state_dict_checked(model, state_dict, strict=True, what=f"{ckpt_path} -> {model_config['model_type']}")
    ordered = {k: state_dict[k].contiguous() for k in model.state_dict() if k in state_dict}

    out = output_checkpoint_path(output_path, use_safetensors)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model_checkpoint(ordered, out, model_config=model_config)
    return out
