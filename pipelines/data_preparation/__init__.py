"""data_preparation: demo rendering, scan + probe of raw audio, manifest, report, dataset config."""

from pipelines.data_preparation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
