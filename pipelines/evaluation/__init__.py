"""evaluation: register the trained models, judge them, move the ``champion`` alias, write the report."""

from pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
