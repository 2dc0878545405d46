"""Token lookup-table conditioners: ``lut`` (learned embedding per token id of a Hugging Face tokenizer)
and ``phoneme`` (learned embedding per English phoneme from g2p_en). No pretrained weights: only the
tokenizer (``lut``, local files) or the g2p_en package (``phoneme``) come from outside.

Keys as stable-audio-tools 0.0.20: ``token_embedder.weight``, ``abs_pos_emb.emb.weight``,
``phoneme_embedder.weight``, ``proj_out.*`` (only with ``project_out``: the table already has
``output_dim`` columns).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stable_audio_ops.config.schema import ConfigNode, check_known_keys
from stable_audio_ops.models.conditioner_base import (
    Cond,
    Conditioner,
    TextEncoderUnavailableError,
    _check_texts,
    load_hf_tokenizer,
)
from stable_audio_ops.models.transformer import AbsolutePositionalEmbedding


class TokenizerLUTConditioner(Conditioner):
    """Tokenize to ``max_length`` (padded), embed each id (``token_embedder``, one row per tokenizer entry
    including added ``special_tokens``), ``proj_out``, zero padded positions, then add learned absolute
    positions when ``use_abs_pos_emb`` (to every position, padding included, as upstream) ->
    ``[B, max_length, output_dim]`` and a bool mask."""

    def __init__(self, tokenizer: Any, output_dim: int, max_length: int = 1024, use_abs_pos_emb: bool = False,
                 project_out: bool = False, special_tokens: Sequence[str] = ()):
        super().__init__(output_dim, output_dim, project_out=project_out)
        if special_tokens:
            tokenizer.add_special_tokens({"additional_special_tokens": list(special_tokens)})
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.token_embedder = nn.Embedding(len(tokenizer), output_dim)
        self.abs_pos_emb = AbsolutePositionalEmbedding(output_dim, max_length) if use_abs_pos_emb else None

    def forward(self, values: Sequence[Any], device: torch.device | str = "cpu") -> Cond:
        texts = _check_texts(values, type(self).__name__)
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding="max_length",
                                 return_tensors="pt")
        input_ids = encoded["input_ids"].to(device)
        mask = encoded["attention_mask"].to(device).to(torch.bool)
        embeddings = self.proj_out(self.token_embedder(input_ids))
        embeddings = embeddings * mask.unsqueeze(-1).to(embeddings.dtype)
        if self.abs_pos_emb is not None:
            embeddings = embeddings + self.abs_pos_emb(embeddings)
        return [embeddings, mask]


# Phoneme-level symbols upstream maps to the "ignored" row (spaces and punctuation).
_IGNORED_PHONEMES = frozenset([" ", *string.punctuation])


def _load_g2p() -> Any:
    try:
        from g2p_en import G2p
    except ImportError as exc:
        raise ImportError("the phoneme conditioner needs the g2p_en package (pip install g2p_en; it also needs "
                          "its NLTK data, averaged_perceptron_tagger and cmudict, available offline)") from exc
    return G2p()


class PhonemeConditioner(Conditioner):
    """English text -> g2p_en phonemes -> ``phoneme_embedder`` rows (0 = padding, 1 = ignored/unknown,
    2 + g2p's index otherwise), padded to the longest item of the batch -> ``[B, L, output_dim]``.

    Upstream semantics kept: the mask is all ones (padding rows are attended to, so an item's tokens
    depend on the longest item in its batch). Difference: upstream documents but never applies the cut
    to ``max_length`` phonemes; here sequences are truncated to ``max_length``. No offline fallback
    (e.g. characters instead of phonemes) on purpose: it would silently train a different model.
    """

    def __init__(self, g2p: Any, output_dim: int, max_length: int = 1024, project_out: bool = False):
        super().__init__(output_dim, output_dim, project_out=project_out)
        self.g2p = g2p
        self.max_length = max_length
        self.phoneme_embedder = nn.Embedding(len(g2p.phonemes) + 2, output_dim)

    def _ids(self, text: str) -> list[int]:
        phonemes = ["_" if p in _IGNORED_PHONEMES else p for p in self.g2p(text)][: self.max_length]
        return [self.g2p.p2idx[p] + 2 if p in self.g2p.p2idx else 1 for p in phonemes]

    def forward(self, values: Sequence[Any], device: torch.device | str = "cpu") -> Cond:
        ids = [self._ids(t) for t in _check_texts(values, type(self).__name__)]
        longest = max(len(i) for i in ids)
        padded = torch.tensor([i + [0] * (longest - len(i)) for i in ids], device=device, dtype=torch.long)
        self.to(device)
        embeddings = self.proj_out(self.phoneme_embedder(padded))
        return [embeddings, torch.ones(embeddings.shape[0], embeddings.shape[1], device=device)]


# --- builders ----------------------------------------------------------------------------------------

def build_lut(node: ConfigNode, output_dim: int) -> Conditioner:
    """``tokenizer_name`` names a tokenizer in the local Hugging Face cache; ``model_path`` (wins) is a
    local folder with the tokenizer files."""
    check_known_keys(node, ("output_dim", "tokenizer_name", "model_path", "max_length", "use_abs_pos_emb",
                            "project_out", "special_tokens"))
    model_path = node.get("model_path", "a string", None)
    if model_path is not None:
        if not Path(model_path).is_dir():
            raise TextEncoderUnavailableError(node.source, node._key_path("model_path"),
                                              f"{model_path!r} is not a folder (expected a local tokenizer folder)")
        src, key = model_path, "model_path"
    else:
        src, key = node.get("tokenizer_name", "a string"), "tokenizer_name"
    tokenizer = load_hf_tokenizer(src, "tokenizer", node, key)
    return TokenizerLUTConditioner(
        tokenizer, output_dim, max_length=node.get("max_length", "a positive int", 1024),
        use_abs_pos_emb=node.get("use_abs_pos_emb", "a bool", False),
        project_out=node.get("project_out", "a bool", False),
        special_tokens=node.get("special_tokens", "a list of strings", []))


def build_phoneme(node: ConfigNode, output_dim: int) -> Conditioner:
    check_known_keys(node, ("output_dim", "max_length", "project_out"))
    max_length = node.get("max_length", "a positive int", 1024)
    project_out = node.get("project_out", "a bool", False)
    try:
        g2p = _load_g2p()
    except ImportError as exc:
        raise node.error(str(exc)) from None
    return PhonemeConditioner(g2p, output_dim, max_length=max_length, project_out=project_out)


__all__ = ["PhonemeConditioner", "TokenizerLUTConditioner", "build_lut", "build_phoneme"]
