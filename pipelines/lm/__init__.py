"""lm: discrete autoencoder (train, unwrap) -> tokens of the prepared train split -> multi-codebook LM (train, unwrap)
-> held-out token perplexity and generated clips (report) -> registry (the LM tagged with its tokenizer's version)."""

from pipelines.lm.pipeline import create_pipeline

__all__ = ["create_pipeline"]
