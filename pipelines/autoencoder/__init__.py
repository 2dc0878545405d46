"""autoencoder: train (own process) -> unwrap into a model-only checkpoint."""

from pipelines.autoencoder.pipeline import create_pipeline

__all__ = ["create_pipeline"]
