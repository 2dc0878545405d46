"""clap: train the demo CLAP (issue 11) on the demo notes' train split, for the evaluation's CLAP score."""

from pipelines.clap.pipeline import create_pipeline

__all__ = ["create_pipeline"]
