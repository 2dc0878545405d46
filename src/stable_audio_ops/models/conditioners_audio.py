"""Audio conditioners: encode conditioning audio with a pretransform (``pretransform``) or mix several
source signals through one (``source_mix``), for input-concatenation conditioning.

Both output channel-first ``[B, output_dim, T]`` (T = encoded frames) with a ``[B, T]`` mask of ones,
the layout ``input_concat_ids`` concatenates along channels. The pretransform is either built from the
conditioner's own ``pretransform_config`` or is the model's (``use_model_pretransform: true``). It is
frozen and kept outside the module tree unless ``save_pretransform`` (then its weights are saved under
``conditioner.conditioners.<id>.pretransform.*``, as upstream).

Differences from stable-audio-tools 0.0.20, where it is broken:

* ``pretransform``: upstream applies ``proj_out`` (a Linear over encoded channels) to the *time* axis
  of ``[B, C, T]`` latents, which fails or mixes frames whenever ``output_dim`` differs from the
  encoded channels (open PR #231). Here ``proj_out`` maps channels, keys unchanged
  (``proj_out.weight`` is ``[output_dim, encoded_channels]``).
* ``source_mix``: upstream takes its dtype from ``proj_out``'s parameters, which crashes when
  ``proj_out`` is an Identity (encoded channels == ``output_dim``); here the heads' dtype is used. The
  unused ``proj_out`` Linear is still created for checkpoint-key parity.
* ``pretransform_ckpt_path`` together with ``use_model_pretransform`` would silently overwrite the
  model's own pretransform weights upstream; here it is a config error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.data.transforms import set_audio_channels
from stable_audio_ops.models.autoencoder_factory import create_pretransform_from_config
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict
from stable_audio_ops.models.conditioner_base import Cond, Conditioner
from stable_audio_ops.models.meta_init import real_parameters


def _hold_pretransform(owner: nn.Module, pretransform: nn.Module, save: bool) -> None:
    """Register the pretransform as a submodule only when its weights belong in checkpoints."""
    if save:
        owner.pretransform = pretransform
    else:
        owner.__dict__["pretransform"] = pretransform


def _encode(pretransform: nn.Module, audio: torch.Tensor) -> torch.Tensor:
    """``[B, C, n]`` audio -> ``[B, encoded_channels, T]``; no graph through a frozen pretransform."""
    with torch.set_grad_enabled(bool(getattr(pretransform, "enable_grad", False)) and torch.is_grad_enabled()):
        return pretransform.encode(audio)


def _as_audio(value: Any, channels: int, what: str) -> torch.Tensor:
    audio = torch.as_tensor(value)
    if audio.dim() not in (1, 2):
        raise ValueError(f"{what} expects audio shaped [channels, samples] or [samples], got {tuple(audio.shape)}")
    return set_audio_channels(audio.float(), channels)


class PretransformConditioner(Conditioner):
    """Per-item audio ``[C, n]`` -> pretransform latents, ``proj_out`` over channels -> ``[B, output_dim, T]``."""

    def __init__(self, pretransform: nn.Module, output_dim: int, save_pretransform: bool = False):
        super().__init__(int(pretransform.encoded_channels), output_dim)
        _hold_pretransform(self, pretransform, save_pretransform)

    def forward(self, audio: Sequence[Any] | torch.Tensor, device: torch.device | str = "cpu") -> Cond:
        pretransform = self.pretransform
        pretransform.to(device)
        self.proj_out.to(device)
        items = list(audio) if not isinstance(audio, torch.Tensor) or audio.dim() == 3 else [audio]
        items = [_as_audio(a, pretransform.io_channels, type(self).__name__) for a in items]
        lengths = {a.shape[-1] for a in items}
        if len(lengths) > 1:
            raise ValueError(f"{type(self).__name__}: batch items have different lengths {sorted(lengths)}; "
                             "crop or pad the conditioning audio to one length")
        latents = _encode(pretransform, torch.stack(items).to(device))
        if not isinstance(self.proj_out, nn.Identity):
            latents = self.proj_out(latents.to(self.proj_out.weight.dtype).transpose(1, 2)).transpose(1, 2)
        return [latents, torch.ones(latents.shape[0], latents.shape[2], device=latents.device)]


class SourceMixConditioner(Conditioner):
    """Per-item ``{source_key: audio [C, n]}`` (or pre-encoded latents ``[encoded_channels, T]``): each
    present source is encoded, projected by its own 1x1 conv (``source_heads.<i>``, order of
    ``source_keys``) and the projections are summed -> ``[B, output_dim, T]``. An item with none of the
    sources gets the learned ``null_source`` repeated ``source_length`` frames when
    ``allow_null_source``, else it is an error."""

    def __init__(self, pretransform: nn.Module, output_dim: int, source_keys: Sequence[str],
                 save_pretransform: bool = False, pre_encoded: bool = False, allow_null_source: bool = False,
                 source_length: int | None = None):
        encoded = int(pretransform.encoded_channels)
        super().__init__(encoded, output_dim)
        _hold_pretransform(self, pretransform, save_pretransform)
        if not source_keys:
            raise ValueError("source_mix needs at least one source key")
        self.source_keys = list(source_keys)
        self.source_heads = nn.ModuleList(nn.Conv1d(encoded, output_dim, kernel_size=1) for _ in self.source_keys)
        self.pre_encoded = pre_encoded
        self.allow_null_source = allow_null_source
        if allow_null_source:
            if source_length is None:
                raise ValueError("source_length is required when allow_null_source is true")
            self.null_source = nn.Parameter(torch.randn(output_dim, 1))
            self.source_length = int(source_length)

    def _latents(self, source: Any, key: str, device: torch.device | str) -> torch.Tensor:
        if self.pre_encoded:
            latents = torch.as_tensor(source)
            if latents.dim() != 2 or latents.shape[0] != self.dim:
                raise ValueError(f"source_mix: pre-encoded source {key!r} must be [{self.dim}, frames], "
                                 f"got {tuple(latents.shape)}")
            return latents.to(device)
        audio = _as_audio(source, self.pretransform.io_channels, f"source_mix source {key!r}")
        return _encode(self.pretransform, audio.unsqueeze(0).to(device)).squeeze(0)

    def forward(self, sources: Sequence[Mapping[str, Any]], device: torch.device | str = "cpu") -> Cond:
        self.pretransform.to(device)
        self.source_heads.to(device)
        dtype = self.source_heads[0].weight.dtype
        mixes = []
        for i, item in enumerate(sources):
            if not isinstance(item, Mapping):
                raise TypeError(f"source_mix expects a dict of source audio per batch item; item {i} is "
                                f"{type(item).__name__}")
            projected = [head(self._latents(item[key], key, device).to(dtype))
                         for key, head in zip(self.source_keys, self.source_heads, strict=True) if key in item]
            if projected:
                if len({p.shape[-1] for p in projected}) > 1:
                    raise ValueError(f"source_mix: batch item {i} has sources of different encoded lengths "
                                     f"{[p.shape[-1] for p in projected]}")
                mixes.append(torch.stack(projected).sum(0))
            elif self.allow_null_source:
                mixes.append(self.null_source.to(device).repeat(1, self.source_length))
            else:
                raise ValueError(f"source_mix: batch item {i} has none of the sources {self.source_keys} "
                                 f"(has: {', '.join(map(str, item)) or 'nothing'}); set allow_null_source to "
                                 "accept that")
        if len({m.shape[-1] for m in mixes}) > 1:
            raise ValueError(f"source_mix: batch items mix to different lengths {[m.shape[-1] for m in mixes]}")
        mix = torch.stack(mixes)
        return [mix, torch.ones(mix.shape[0], mix.shape[2], device=mix.device)]


# --- builders ----------------------------------------------------------------------------------------

_PRETRANSFORM_KEYS = ("output_dim", "sample_rate", "pretransform_config", "use_model_pretransform",
                      "pretransform_ckpt_path", "save_pretransform")


def _conditioning_pretransform(node: ConfigNode, model_pretransform: nn.Module | None) -> nn.Module:
    """The conditioner's own pretransform (``pretransform_config``, optional ``pretransform_ckpt_path``:
    an unwrapped autoencoder checkpoint) or the model's (``use_model_pretransform``)."""
    sample_rate = node.get("sample_rate", "a positive int")
    ckpt = node.get("pretransform_ckpt_path", "a string", None)
    if node.get("use_model_pretransform", "a bool", False):
        if model_pretransform is None:
            raise node.error("is true but the model has no pretransform (add model.pretransform, or give this "
                             "conditioner a pretransform_config)", "use_model_pretransform")
        if ckpt is not None:
            raise node.error("would overwrite the model's own pretransform weights (use_model_pretransform is "
                             "true); load those with the model's pretransform checkpoint instead",
                             "pretransform_ckpt_path")
        return model_pretransform
    if not node.has("pretransform_config"):
        raise node.error("missing required key (expected an object), or set use_model_pretransform: true",
                         "pretransform_config")
    if ckpt is not None and not Path(ckpt).is_file():
        raise node.error(f"no such file: {ckpt!r}", "pretransform_ckpt_path")
    # Not saved with the model (no save_pretransform): its weights come from its own file, so they must be
    # real even while the model is built on meta for a checkpoint load.
    real = real_parameters() if not node.get("save_pretransform", "a bool", False) else nullcontext()
    with real:
        pretransform = create_pretransform_from_config(node.data["pretransform_config"], sample_rate,
                                                       node.child("pretransform_config"))
        if ckpt is not None:
            pretransform.load_state_dict(load_ckpt_state_dict(ckpt))
    return pretransform


def build_pretransform_conditioner(node: ConfigNode, output_dim: int,
                                   model_pretransform: nn.Module | None = None) -> Conditioner:
    check_known_keys(node, _PRETRANSFORM_KEYS)
    return PretransformConditioner(_conditioning_pretransform(node, model_pretransform), output_dim,
                                   save_pretransform=node.get("save_pretransform", "a bool", False))


def build_source_mix_conditioner(node: ConfigNode, output_dim: int,
                                 model_pretransform: nn.Module | None = None) -> Conditioner:
    check_known_keys(node, (*_PRETRANSFORM_KEYS, "source_keys", "pre_encoded", "allow_null_source", "source_length"))
    source_keys = node.get("source_keys", "a list of strings")
    if not source_keys:
        raise node.error("expected a non-empty list of metadata keys", "source_keys")
    allow_null = node.get("allow_null_source", "a bool", False)
    source_length = node.get("source_length", "a positive int", None)
    if allow_null and source_length is None:
        raise node.error("is required when allow_null_source is true (encoded frames of the null source)",
                         "source_length")
    return SourceMixConditioner(
        _conditioning_pretransform(node, model_pretransform), output_dim, source_keys,
        save_pretransform=node.get("save_pretransform", "a bool", False),
        pre_encoded=node.get("pre_encoded", "a bool", False), allow_null_source=allow_null,
        source_length=source_length)


# The registry passes these builders the model's pretransform (``use_model_pretransform``).
build_pretransform_conditioner.takes_model_pretransform = True  # type: ignore[attr-defined]
build_source_mix_conditioner.takes_model_pretransform = True  # type: ignore[attr-defined]

__all__ = ["PretransformConditioner", "SourceMixConditioner", "build_pretransform_conditioner",
           "build_source_mix_conditioner"]
