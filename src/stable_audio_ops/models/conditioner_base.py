"""What every conditioner shares: the ``Conditioner`` base (``proj_out``), the ``[embeddings, mask]`` output
type, and the machinery of frozen Hugging Face text encoders (local-only loading, tokenizing to
``max_length``, padding modes, a per-caption cache).

Kept apart from :mod:`.conditioners` (the registry) so that conditioner families in their own modules
(:mod:`.conditioners_hf`, :mod:`.conditioners_tokens`, :mod:`.conditioners_audio`) can build on it while
the registry imports them: no import cycle.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.meta_init import real_parameters

T = TypeVar("T")

Cond = list  # [embeddings, mask]: a list so callers may replace items, as upstream code does


class Conditioner(nn.Module):
    """Base: ``proj_out`` maps the encoder width ``dim`` to ``output_dim`` (Identity when they match)."""

    def __init__(self, dim: int, output_dim: int, project_out: bool = False):
        super().__init__()
        self.dim = dim
        self.output_dim = output_dim
        self.proj_out: nn.Module = nn.Linear(dim, output_dim) if (dim != output_dim or project_out) else nn.Identity()


def _ones_mask(batch: int, device: torch.device | str | None) -> torch.Tensor:
    return torch.ones(batch, 1, device=device)


class TextEncoderUnavailableError(ConfigError):
    """A text conditioner's encoder weights are not on this machine (nothing is downloaded)."""


def _check_texts(values: Sequence[Any], what: str) -> list[str]:
    texts = []
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise TypeError(f"{what} expects a string per batch item; item {i} is {type(v).__name__}: {v!r}")
        texts.append(v)
    return texts


# How a text conditioner fills padded token positions (upstream 0.0.20's PaddingMode values).
PADDING_MODES = ("zero", "none", "learned")


class _FrozenTextEncoder(Conditioner):
    """Shared logic for Hugging Face encoders: tokenize to ``max_length`` (padded), take
    ``last_hidden_state``, apply ``proj_out``, handle padded positions (``padding_mode``, upstream 0.0.20:
    ``"zero"`` (default) zeroes them, ``"none"`` keeps the encoder's output, ``"learned"`` puts a learned
    ``padding_embedding`` there), return a bool mask.

    Frozen encoders are stored outside the module tree (no state-dict keys, not moved by ``.to``)
    and their per-caption outputs are cached (captions repeat across epochs).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, dim: int, output_dim: int, max_length: int,
                 enable_grad: bool, project_out: bool, cache_size: int, half_on_cuda: bool = False,
                 padding_mode: str = "zero"):
        super().__init__(dim, output_dim, project_out=project_out)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        if padding_mode == "learned":
            self.padding_embedding = nn.Parameter(torch.randn(output_dim) * 0.02)
        self.max_length = max_length
        self.enable_grad = enable_grad
        self.tokenizer = tokenizer
        self.cache_size = cache_size
        self.half_on_cuda = half_on_cuda
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        model.requires_grad_(enable_grad)
        if enable_grad:
            self.model = model
        else:
            self.__dict__["model"] = model
            model.eval()

    def _run(self, texts: list[str], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding="max_length",
                                 return_tensors="pt")
        input_ids = encoded["input_ids"].to(device)
        mask = encoded["attention_mask"].to(device).to(torch.bool)
        model = self.model
        model.to(device)
        if self.half_on_cuda and torch.device(device).type == "cuda":
            model.to(torch.float16)
        if not self.enable_grad:
            model.eval()
        with torch.set_grad_enabled(self.enable_grad and torch.is_grad_enabled()):
            hidden = self._hidden_states(model, input_ids, mask)
        return hidden.float(), mask

    def _hidden_states(self, model: nn.Module, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The per-token features of one batch (an encoder's ``last_hidden_state``); subclasses override."""
        return model(input_ids=input_ids, attention_mask=mask)["last_hidden_state"]

    def _features(self, hidden: torch.Tensor) -> torch.Tensor:
        """Learned steps between the (cached) encoder output and ``proj_out``; none by default."""
        return hidden

    def _encode(self, texts: list[str], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        if self.enable_grad or self.cache_size <= 0:
            return self._run(texts, device)
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            hidden, mask = self._run(missing, device)
            for text, h, m in zip(missing, hidden.cpu(), mask.cpu(), strict=True):
                self._cache[text] = (h, m)
        for text in texts:
            self._cache.move_to_end(text)
        hidden = torch.stack([self._cache[t][0] for t in texts]).to(device)
        mask = torch.stack([self._cache[t][1] for t in texts]).to(device)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return hidden, mask

    def forward(self, values: Sequence[Any], device: torch.device | str = "cpu") -> Cond:
        texts = _check_texts(values, type(self).__name__)
        hidden, mask = self._encode(texts, device)
        self.proj_out.to(device)
        if not isinstance(self.proj_out, nn.Identity):
            hidden = hidden.to(next(self.proj_out.parameters()).dtype)
        embeddings = self.proj_out(self._features(hidden))
        return [self.apply_padding(embeddings, mask), mask]

    def apply_padding(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Fill padded positions (``mask`` False) as ``padding_mode`` says."""
        if self.padding_mode == "zero":
            return embeddings * mask.unsqueeze(-1).to(embeddings.dtype)
        if self.padding_mode == "learned":
            fill = self.padding_embedding.to(embeddings.dtype).expand_as(embeddings)
            return torch.where(mask.unsqueeze(-1), embeddings, fill)
        return embeddings


def load_hf_local(name_or_path: str, load: Callable[[str], T], what: str, node: ConfigNode | None, key: str) -> T:
    """Run ``load(name_or_path)`` (``from_pretrained`` calls with ``local_files_only=True``) quietly, with
    real parameters, and turn "not on this machine" into a :class:`TextEncoderUnavailableError` that
    says where to put the files. Nothing is ever downloaded."""
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # no weight-loading chatter in training logs
    hf_logging.disable_progress_bar()
    try:
        with real_parameters():  # its own weights file: never shape-only, even while the model is built on meta
            return load(name_or_path)
    except (OSError, ValueError) as exc:
        source = node.source if node is not None else ""
        path = node._key_path(key) if node is not None else key
        cache = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
        raise TextEncoderUnavailableError(
            source, path,
            f"cannot load the {what} {name_or_path!r} from local files (nothing is downloaded at run time). "
            f"Either put it in the Hugging Face cache ({cache}; e.g. run `hf download "
            f"{name_or_path}` on a machine with network access and copy the cache), or set {key} to a local "
            f"folder holding config.json, the weights and the tokenizer files. Cause: {exc}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def load_hf_tokenizer(name_or_path: str, what: str, node: ConfigNode | None, key: str, **kwargs: Any) -> Any:
    """A tokenizer from a local folder or the local Hugging Face cache."""
    import transformers

    return load_hf_local(
        name_or_path, lambda src: transformers.AutoTokenizer.from_pretrained(src, local_files_only=True, **kwargs),
        what, node, key)


def _load_hf_encoder(name_or_path: str, model_cls_name: str, what: str, node: ConfigNode | None, key: str):
    """Tokenizer + encoder from a local folder or the local Hugging Face cache, never the network."""
    import transformers

    model_cls = getattr(transformers, model_cls_name)

    def load(src: str) -> tuple[Any, nn.Module]:
        tokenizer = transformers.AutoTokenizer.from_pretrained(src, local_files_only=True)
        return tokenizer, model_cls.from_pretrained(src, local_files_only=True)

    return load_hf_local(name_or_path, load, what, node, key)
