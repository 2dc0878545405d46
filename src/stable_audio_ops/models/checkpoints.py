"""Reading, checking and writing model checkpoints (stable-audio-tools compatible).

Upstream's loaders either fail with torch's wall of key names or, in ``copy_state_dict``, silently
skip everything that does not fit, so a wrong file yields a randomly initialised model. Here every
load returns a :class:`LoadReport` (missing / unexpected / shape-mismatched keys) and a strict load
raises :class:`CheckpointError` with all three groups, plus a hint when the file is a *wrapped*
training checkpoint (keys prefixed ``autoencoder.`` / ``diffusion.`` ...) given where model weights
were expected - the most common mix-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from stable_audio_ops.errors import CheckpointError
from stable_audio_ops.models.meta_init import meta_tensor_names
from stable_audio_ops.models.pretransforms import AutoencoderPretransform
from stable_audio_ops.utils.io import atomic_path

# Prefixes of upstream's training-wrapper state dicts (the Lightning modules hold the model as ``autoencoder``,
# ``diffusion``, ``diffae`` and their EMA copies as ``*_ema.ema_model``); the model's own keys follow them.
WRAPPER_PREFIXES = (
    "autoencoder.",
    "autoencoder_ema.ema_model.",
    "diffusion.",
    "diffusion_ema.ema_model.",
    "diffae_ema.ema_model.",
    "diffae.",
    "model_ema.",
)
_WRAPPER_ONLY_PREFIXES = ("discriminator.", "losses_gen.", "losses_disc.", "autoencoder_ema.", "diffusion_ema.")
_LIGHTNING_KEYS = ("pytorch-lightning_version", "global_step", "optimizer_states", "loops")

UNWRAP_HINT = (
    "this looks like a wrapped training checkpoint (Lightning; model keys are prefixed with {prefix!r}). "
    "Export the model weights first: `python unwrap_model.py --model-config <config> --ckpt-path <ckpt> "
    "--name <out>` (or stable_audio_ops.training.unwrap.unwrap_checkpoint)"
)


@dataclass
class LoadReport:
    """What happened when a state dict met a model; ``ok`` means a strict load would succeed."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    loaded: int = 0
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def format(self, limit: int = 20) -> str:
        """Human-readable summary; each group shows at most ``limit`` keys and the total count."""

        def group(title: str, items: list[str]) -> str:
            shown = "\n".join(f"    {item}" for item in items[:limit])
            more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
            return f"  {title} ({len(items)}):" + (f"\n{shown}{more}" if items else " none")

        lines = [
            f"loaded {self.loaded} tensors",
            group("missing from checkpoint", self.missing),
            group("unexpected in checkpoint", self.unexpected),
            group("shape mismatch (checkpoint vs model)",
                  [f"{k}: {list(ck)} vs {list(md)}" for k, ck, md in self.mismatched]),
        ]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


def wrapped_prefix(state_dict: Mapping[str, object], model_keys: set[str] | None = None) -> str | None:
    """The wrapper prefix if ``state_dict`` looks like a training-wrapper state dict, else None.

    With ``model_keys`` the prefix must also turn checkpoint keys into model keys, so a model whose
    own parameters happen to start with e.g. ``diffusion.`` is not misdiagnosed.
    """
    keys = list(state_dict)
    if not keys or (model_keys is not None and model_keys & set(keys)):
        return None
    for prefix in WRAPPER_PREFIXES:
        stripped = {k[len(prefix):] for k in keys if k.startswith(prefix)}
        if not stripped:
            continue
        if model_keys is not None:
            if len(stripped & model_keys) >= max(1, len(model_keys) // 2):
                return prefix
        elif all(k.startswith(prefix) or k.startswith(_WRAPPER_ONLY_PREFIXES) for k in keys):
            return prefix
    return None


def _hint_for(state_dict: Mapping[str, object], model_keys: set[str]) -> str | None:
    prefix = wrapped_prefix(state_dict, model_keys)
    return UNWRAP_HINT.format(prefix=prefix) if prefix else None


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path}: is a directory; a DeepSpeed checkpoint folder must be converted to a single file first "
            "(scripts/ds_zero_to_pl_ckpt.py upstream)"
        )
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found")
    return path


def _torch_load(path: Path) -> object:
    """``torch.load`` memory-mapped: tensors stay in the file (copy-on-write pages) until touched, so reading a
    checkpoint costs no RAM up front and reading only its embedded config costs none at all. Files in
    torch's legacy (pre-1.6, non-zip) format cannot be mapped and are read whole."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types (UnpicklingError, RuntimeError, EOFError)
        raise CheckpointError(f"{path}: cannot read as a torch checkpoint: {exc}") from exc


def load_ckpt_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of an (unwrapped) checkpoint: ``.safetensors`` file, or ``torch.load(...)["state_dict"]``.

    Both are memory-mapped (safetensors' ``load_file`` maps the file; ``.ckpt`` via ``torch.load(mmap=True)``):
    pages are read when a tensor is first touched and written pages are private copies, never the file.

    Like upstream, a wrapped Lightning checkpoint returns the wrapper's state dict; the loaders below
    recognise that and say how to unwrap it.
    """
    path = _check_path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise CheckpointError(f"{path}: cannot read as safetensors: {exc}") from exc
    obj = _torch_load(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), Mapping):
        return dict(obj["state_dict"])
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)  # a bare ``torch.save(model.state_dict())``: unambiguous, so accept it
    raise CheckpointError(f"{path}: no 'state_dict' entry (found: {sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__})")


def _load_target(model: nn.Module) -> nn.Module:
    # A pretransform's checkpoint holds the inner autoencoder's keys (upstream's load_state_dict override).
    return model.model if isinstance(model, AutoencoderPretransform) else model


def _compare(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> tuple[LoadReport, dict[str, torch.Tensor]]:
    own = model.state_dict()
    report = LoadReport()
    fitting: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            fitting[key] = value
    report.missing = [k for k in own if k not in state_dict]
    report.loaded = len(fitting)
    if not report.ok:
        report.hint = _hint_for(state_dict, set(own))
    return report, fitting


def _assignable(model: nn.Module, fitting: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # assign=True keeps the checkpoint tensor as it is; cast where the model's dtype differs (an fp16 file into
    # an fp32 model) so the result is what copying into the model would give.
    own = model.state_dict()
    return {k: v if v.dtype == own[k].dtype else v.to(own[k].dtype) for k, v in fitting.items()}


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True,
                            what: str = "model", assign: bool = False) -> LoadReport:
    """Load weights with a readable report. Strict: any problem raises (nothing is loaded).
    Non-strict: loads every key whose name and shape fit and returns the report.

    ``assign``: the checkpoint's tensors *become* the parameters instead of being copied into them: no second
    copy of the weights, and the way to fill a model built with parameters on ``meta``
    (:func:`~stable_audio_ops.models.meta_init.parameters_on_meta`); such a model must load strictly."""
    target = _load_target(model)
    report, fitting = _compare(target, state_dict)
    if strict and not report.ok:
        raise CheckpointError(f"{what}: checkpoint does not match the model\n{report.format()}")
    if assign:
        fitting = _assignable(target, fitting)
    target.load_state_dict(fitting, strict=False, assign=assign)
    left = meta_tensor_names(target)
    if left:
        raise CheckpointError(f"{what}: these tensors were built without memory and the checkpoint does not fill "
                              f"them (load such a model strictly): {', '.join(left[:20])}")
    return report


def copy_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    """Deliberate partial load (fine-tuning from another config): copy keys whose name and shape fit.

    Unlike upstream it refuses to "succeed" when nothing fits, which is always a wrong file.
    """
    target = _load_target(model)
    report, fitting = _compare(target, state_dict)
    if state_dict and not fitting:
        msg = "no checkpoint tensor matches the model (nothing would be loaded)"
        raise CheckpointError(f"{msg}\n{report.format()}")
    target.load_state_dict(fitting, strict=False)
    return report


def _dedupe_storage(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied weights); give repeats their own copy."""
    seen: set[tuple[int, int]] = set()
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach().cpu()
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        if ident in seen or not tensor.is_contiguous():
            tensor = tensor.contiguous().clone()
        seen.add((tensor.untyped_storage().data_ptr(), tensor.storage_offset()))
        out[key] = tensor
    return out


def save_model_checkpoint(state_dict: Mapping[str, torch.Tensor], path: str | Path,
                          model_config: dict | None = None) -> Path:
    """Write an unwrapped checkpoint atomically: ``.safetensors`` (config JSON in the metadata under
    ``model_config``) or anything else as ``torch.save({"state_dict", "model_config"})``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            metadata = {"format": "pt"}
            if model_config is not None:
                metadata["model_config"] = json.dumps(model_config)
            save_file(_dedupe_storage(state_dict), tmp, metadata=metadata)
        else:
            payload: dict[str, object] = {"state_dict": dict(state_dict)}
            if model_config is not None:
                payload["model_config"] = model_config
            torch.save(payload, tmp)
    return path


def read_embedded_model_config(path: str | Path) -> dict | None:
    """The model config stored inside a checkpoint (ours, or a Lightning checkpoint from upstream's
    ModelConfigEmbedderCallback), or None when the file has none."""
    path = _check_path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("model_config")
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: embedded model_config is not valid JSON: {exc}") from exc
    obj = _torch_load(path)
    config = obj.get("model_config") if isinstance(obj, dict) else None
    return config if isinstance(config, dict) else None


def is_lightning_checkpoint(obj: Mapping[str, object]) -> bool:
    """True for a loaded Lightning checkpoint dict (training state, not model weights)."""
    return any(key in obj for key in _LIGHTNING_KEYS)
