"""Loading and validating stable-audio-tools JSON configs (model and dataset)."""

from stable_audio_ops.config.schema import ConfigNode, lookup

__all__ = ["ConfigNode", "lookup"]
