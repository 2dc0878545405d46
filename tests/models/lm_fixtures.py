"""Tiny ``lm`` model configs over a tiny rvq / dac_rvq autoencoder (shared by the model, generation and training
tests). Branch outputs are not zero-initialised, so a fresh model already depends on context and conditioning."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

TINY_AE = Path(__file__).resolve().parents[1] / "fixtures" / "configs" / "autoencoder_tiny.json"
CODEBOOK_SIZE = 16
NUM_QUANTIZERS = 3
DOWNSAMPLING = 8  # audio samples per code frame of the tiny autoencoder

BOTTLENECKS = {
    "rvq": {"type": "rvq", "config": {"dim": 4, "codebook_size": CODEBOOK_SIZE, "num_quantizers": NUM_QUANTIZERS,
                                      "kmeans_iters": 2}},
    "dac_rvq": {"type": "dac_rvq", "config": {"input_dim": 4, "n_codebooks": NUM_QUANTIZERS,
                                              "codebook_size": CODEBOOK_SIZE, "codebook_dim": 2}},
}


def tiny_autoencoder_config(bottleneck: str = "rvq") -> dict[str, Any]:
    """The ``model`` block of the tiny test autoencoder with a quantizing bottleneck (4 latent channels)."""
    model = copy.deepcopy(json.loads(TINY_AE.read_text())["model"])
    model["bottleneck"] = copy.deepcopy(BOTTLENECKS[bottleneck])
    model["encoder"]["config"]["latent_dim"] = 4
    return model


def tiny_lm_config(bottleneck: str = "rvq", pattern: str = "delay", conditioned: bool = True,
                   sample_size: int = 256, **training: Any) -> dict[str, Any]:
    """A 2-layer, 64-wide LM over the tiny autoencoder; ``conditioned`` adds a ``label`` list conditioner used
    by cross-attention (as an upstream config spells it)."""
    lm_config: dict[str, Any] = {"embed_dim": 64, "depth": 2, "dim_heads": 32, "zero_init_branch_outputs": False}
    lm: dict[str, Any] = {"type": "continuous_transformer", "codebook_pattern": pattern, "config": lm_config}
    model: dict[str, Any] = {"pretransform": {"type": "autoencoder", "config": tiny_autoencoder_config(bottleneck)},
                             "lm": lm}
    if conditioned:
        model["conditioning"] = {"cond_dim": 32, "configs": [
            {"id": "label", "type": "list", "config": {"options": ["low", "high"]}}]}
        lm["cross_attention_cond_ids"] = ["label"]
        lm_config["cross_attn_cond_dim"] = 32
    return {"model_type": "lm", "sample_rate": 16000, "sample_size": sample_size, "audio_channels": 1,
            "model": model, "training": {"learning_rate": 3e-3, **training}}
