"""A tiny ``clap`` model config for tests: a random 1-layer RoBERTa saved like a local model copy (MiniLM's
tokenizer, so nothing is downloaded), a patched pretransform and a 1-layer latent transformer."""

from __future__ import annotations

import math
from pathlib import Path

import torch

SAMPLE_RATE = 8000
SAMPLE_SIZE = 2048
PATCH = 128
TONES_HZ = [110 * 2 ** (i / 2) for i in range(8)]  # half-octave steps: 110 Hz to 1244 Hz


def save_tiny_roberta(folder: Path) -> Path:
    """A random 32-wide RoBERTa + tokenizer in ``folder``. ``initializer_range`` 0.15 (not 0.02): with the
    default, a tiny random encoder maps every caption to nearly the same pooled vector."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    from stable_audio_ops.models.conditioners import default_text_encoder_path

    tokenizer = AutoTokenizer.from_pretrained(default_text_encoder_path())
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=40,
                           pad_token_id=tokenizer.pad_token_id, type_vocab_size=1, initializer_range=0.15)
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_clap_config(roberta: Path | str, lr: float = 3e-3, **audio_options) -> dict:
    """``model_type: clap`` at 8 kHz: 128-sample patches -> 1-layer transformer (32 wide), 32-d joint space."""
    audio = {"embed_dim": 32, "depth": 1, "dim_heads": 32, "dim_in": PATCH, **audio_options}
    return {
        "model_type": "clap", "sample_rate": SAMPLE_RATE, "sample_size": SAMPLE_SIZE, "audio_channels": 1,
        "model": {
            "joint_embed_dim": 32,
            "pretransform": {"type": "patched", "config": {"channels": 1, "patch_size": PATCH}},
            "audio": {"model": {"type": "transformer", "config": audio}},
            "text": {"context_length": 12, "model": {"type": "roberta", "config": {"name": str(roberta)}}},
        },
        "training": {"learning_rate": lr},
    }


def caption(freq: float) -> str:
    return f"a sine tone at {int(freq)} hertz"


def tone_batch(phase_seed: int = 0, freqs: list[float] = TONES_HZ) -> tuple[torch.Tensor, list[dict]]:
    """(audio ``[N, 1, SAMPLE_SIZE]``, metadata with ``prompt`` and ``padding_mask``): one sine per pitch."""
    g = torch.Generator().manual_seed(phase_seed)
    t = torch.arange(SAMPLE_SIZE) / SAMPLE_RATE
    phases = torch.rand(len(freqs), generator=g) * 2 * math.pi
    audio = torch.stack([0.5 * torch.sin(2 * math.pi * f * t + p) for f, p in zip(freqs, phases, strict=True)])
    metadata = [{"prompt": caption(f), "padding_mask": torch.ones(SAMPLE_SIZE)} for f in freqs]
    return audio[:, None], metadata
