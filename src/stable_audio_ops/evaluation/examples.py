"""The (real, made) pairs the report's figures show, both at the real clip's sample rate.

Why a module of its own: the autoencoder's reconstructions and the generator's notes are drawn side by
side per caption, so both must pick their examples the same way (the first ``count`` clips of the same
round-robin order, keyed by clip id).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from stable_audio_ops.evaluation._audio import resample_mono, to_mono
from stable_audio_ops.evaluation.judge import LabelledClip


def comparison_examples(clips: Sequence[LabelledClip], made: Sequence[np.ndarray], made_sr: int, key: str,
                        count: int) -> list[dict[str, Any]]:
    """The first ``count`` pairs as ``{"id", "caption", "real", key, "sample_rate"}``; ``key`` names the made
    audio (``"reconstruction"`` or ``"generated"``), resampled from ``made_sr`` to the real clip's rate."""
    out = []
    for (real, real_sr, meta), audio in zip(clips[:count], made[:count], strict=True):
        out.append({"id": str(meta.get("id") or meta.get("caption")), "caption": meta.get("caption") or
                    meta.get("prompt", ""), "real": to_mono(real), key: resample_mono(audio, made_sr, int(real_sr)),
                    "sample_rate": int(real_sr)})
    return out


__all__ = ["comparison_examples"]
