"""The generation defaults every front end shares: the generate command, the HTTP API, the MLflow pyfunc and
the evaluation pipeline read them from here, so a prompt without options sounds the same everywhere.

``cfg_scale`` 6.0 is also the default of the library's generate functions (stable-audio-tools' value);
those keep upstream's 250 ``steps`` for compatibility, while the front ends default to 100 (the value of
upstream's Gradio interface).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationDefaults:
    steps: int = 100
    cfg_scale: float = 6.0
    seed: int = -1  # -1 = draw a random seed (and log it)
    batch_size: int = 1


GENERATION_DEFAULTS = GenerationDefaults()
DEFAULT_CFG_SCALE = GENERATION_DEFAULTS.cfg_scale

__all__ = ["DEFAULT_CFG_SCALE", "GENERATION_DEFAULTS", "GenerationDefaults"]
