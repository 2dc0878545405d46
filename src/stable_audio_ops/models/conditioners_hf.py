"""Pretrained Hugging Face text conditioners beyond T5: ``t5gemma`` (the T5Gemma encoder) and
``causal_lm`` (last hidden layer of a decoder-only LM such as Gemma-2, RMS-normalised and scaled).

Like ``t5``, they load from ``model_path`` (a local folder) or the local Hugging Face cache only, never
the network, stay frozen outside the module tree unless ``enable_grad`` (so checkpoints hold only
``proj_out``, ``padding_embedding`` and, for ``causal_lm``, ``norm.scale`` / ``scale``), and return
``[embeddings (B, max_length, output_dim), bool mask (B, max_length)]``.

Differences from stable-audio-tools 0.0.20: the width comes from the loaded model (upstream takes it
from a table of names, so a local folder with another model fails later with a shape error); upstream
compiles T5Gemma with ``torch.compile`` (skipped: frozen, cached outputs make it pointless here); outputs
of frozen encoders are cached per caption, as for ``t5``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.conditioner_base import (
    PADDING_MODES,
    Conditioner,
    TextEncoderUnavailableError,
    _FrozenTextEncoder,
    load_hf_local,
)

# Upstream's accepted names and widths; a local folder (``model_path``) may hold any such model.
T5GEMMA_MODEL_DIMS = {"google/t5gemma-b-b-ul2": 768}
CAUSAL_LM_MODEL_DIMS = {"google/gemma-2-2b": 2304}
T5GEMMA_MIN_TRANSFORMERS = "4.53"  # the first release with T5Gemma


class _RMSNorm(nn.Module):
    """RMS norm with a learned per-channel ``scale`` (upstream ``blocks.RMSNorm``: key ``scale``, eps 1e-6)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (normed * self.scale.float()).to(x.dtype)


class T5GemmaConditioner(_FrozenTextEncoder):
    """``last_hidden_state`` of the T5Gemma encoder (the checkpoint's decoder is not loaded)."""

    def __init__(self, model: nn.Module, tokenizer: Any, output_dim: int, max_length: int = 128,
                 enable_grad: bool = False, project_out: bool = False, cache_size: int = 4096,
                 padding_mode: str = "zero"):
        dim = int(model.config.encoder.hidden_size)
        super().__init__(model, tokenizer, dim, output_dim, max_length, enable_grad, project_out, cache_size,
                         padding_mode=padding_mode)


class CausalLMConditioner(_FrozenTextEncoder):
    """Last entry of a causal LM's ``hidden_states``, then ``norm`` (RMS, learned ``norm.scale``), times a
    learned scalar ``scale`` (initial 0.01, when ``learned_scale``), then ``proj_out`` and padding."""

    def __init__(self, model: nn.Module, tokenizer: Any, output_dim: int, max_length: int = 128,
                 enable_grad: bool = False, project_out: bool = False, learned_scale: bool = True,
                 cache_size: int = 4096, padding_mode: str = "zero"):
        dim = int(model.config.get_text_config().hidden_size)
        if getattr(tokenizer, "pad_token", None) is None:
            tokenizer.pad_token = tokenizer.eos_token  # decoder-only tokenizers often ship without one
        super().__init__(model, tokenizer, dim, output_dim, max_length, enable_grad, project_out, cache_size,
                         padding_mode=padding_mode)
        self.norm = _RMSNorm(dim)
        self.learned_scale = learned_scale
        if learned_scale:
            self.scale = nn.Parameter(torch.tensor(0.01))

    def _hidden_states(self, model: nn.Module, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
        return out["hidden_states"][-1]

    def _features(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.norm.to(hidden.device)(hidden)
        return hidden * self.scale if self.learned_scale else hidden


# --- builders ----------------------------------------------------------------------------------------

def _source(node: ConfigNode, names: dict[str, int], name_key: str, default_name: str,
            extra_source_keys: tuple[str, ...] = ()) -> tuple[str, str]:
    """Where to load from (``model_path`` wins, then e.g. ``repo_id``, then the model name) and its key."""
    name = node.get(name_key, "a string", default_name)
    if name not in names and not Path(name).is_dir():
        raise node.error(f"unknown model {name!r}; known: {', '.join(names)}, or set model_path to a local "
                         "model folder", name_key)
    model_path = node.get("model_path", "a string", None)
    if model_path is not None:
        if not Path(model_path).is_dir():
            raise TextEncoderUnavailableError(node.source, node._key_path("model_path"),
                                              f"{model_path!r} is not a folder (expected a local Hugging Face "
                                              "model folder with config.json, weights and tokenizer files)")
        return model_path, "model_path"
    for key in extra_source_keys:
        value = node.get(key, "a string", None)
        if value is not None:
            return value, key
    return name, name_key


def _t5gemma_encoder_class() -> type:
    import transformers
    from packaging.version import Version

    needed = (f"the t5gemma conditioner needs transformers >= {T5GEMMA_MIN_TRANSFORMERS} (T5GemmaEncoderModel); "
              f"installed: {transformers.__version__}")
    if Version(transformers.__version__) < Version(T5GEMMA_MIN_TRANSFORMERS):
        raise ImportError(needed)
    try:
        from transformers import T5GemmaEncoderModel
    except ImportError as exc:
        raise ImportError(needed) from exc
    return T5GemmaEncoderModel


def _load_t5gemma(src: str, subfolder: str | None) -> tuple[Any, nn.Module]:
    import transformers

    encoder_cls = _t5gemma_encoder_class()
    kwargs = {"subfolder": subfolder} if subfolder else {}
    tokenizer = transformers.AutoTokenizer.from_pretrained(src, local_files_only=True, **kwargs)
    config = transformers.AutoConfig.from_pretrained(src, local_files_only=True, **kwargs)
    config.is_encoder_decoder = False  # load only the encoder of an encoder-decoder checkpoint
    return tokenizer, encoder_cls.from_pretrained(src, config=config, local_files_only=True, **kwargs)


def build_t5gemma(node: ConfigNode, output_dim: int) -> Conditioner:
    check_known_keys(node, ("output_dim", "model_name", "model_path", "repo_id", "subfolder", "max_length",
                            "enable_grad", "project_out", "padding_mode", "cache_size"))
    try:
        _t5gemma_encoder_class()  # before looking for weights: an old transformers cannot use them anyway
    except ImportError as exc:
        raise node.error(str(exc)) from None
    src, key = _source(node, T5GEMMA_MODEL_DIMS, "model_name", "google/t5gemma-b-b-ul2", ("repo_id",))
    subfolder = node.get("subfolder", "a string", None)
    tokenizer, model = load_hf_local(src, lambda s: _load_t5gemma(s, subfolder), "T5Gemma encoder", node, key)
    return T5GemmaConditioner(
        model, tokenizer, output_dim, max_length=node.get("max_length", "a positive int", 128),
        enable_grad=node.get("enable_grad", "a bool", False), project_out=node.get("project_out", "a bool", False),
        cache_size=node.get("cache_size", "a non-negative int", 4096),
        padding_mode=node.choice("padding_mode", PADDING_MODES, "zero"))


def _load_causal_lm(src: str) -> tuple[Any, nn.Module]:
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(src, local_files_only=True)
    return tokenizer, transformers.AutoModelForCausalLM.from_pretrained(src, local_files_only=True)


def build_causal_lm(node: ConfigNode, output_dim: int) -> Conditioner:
    check_known_keys(node, ("output_dim", "model_name", "model_path", "max_length", "enable_grad", "project_out",
                            "learned_scale", "padding_mode", "cache_size"))
    src, key = _source(node, CAUSAL_LM_MODEL_DIMS, "model_name", "google/gemma-2-2b")
    tokenizer, model = load_hf_local(src, _load_causal_lm, "causal language model", node, key)
    return CausalLMConditioner(
        model, tokenizer, output_dim, max_length=node.get("max_length", "a positive int", 128),
        enable_grad=node.get("enable_grad", "a bool", False), project_out=node.get("project_out", "a bool", False),
        learned_scale=node.get("learned_scale", "a bool", True),
        cache_size=node.get("cache_size", "a non-negative int", 4096),
        padding_mode=node.choice("padding_mode", PADDING_MODES, "zero"))


__all__ = ["CAUSAL_LM_MODEL_DIMS", "CausalLMConditioner", "T5GEMMA_MODEL_DIMS", "T5GemmaConditioner",
           "build_causal_lm", "build_t5gemma"]
