"""Which clips the evaluation judges: the test split divided into a judge reference and held-out clips,
and sub-sampled so that every instrument stays represented.

Why round-robin: the judged captions are a prefix of one fixed order, so a smaller limit picks a prefix of
a larger one (the autoencoder's reconstructions and the generator's captions share their first clips,
which the comparison figure puts side by side), and even a short prefix covers every instrument.
"""

from __future__ import annotations

from collections.abc import Sequence

from stable_audio_ops.evaluation.judge import LabelledClip, split_reference


def round_robin(clips: Sequence[LabelledClip], key: str = "instrument") -> list[LabelledClip]:
    """Clips reordered round-robin over ``key`` (groups sorted), so any prefix covers every instrument."""
    groups: dict[str, list[LabelledClip]] = {}
    for clip in clips:
        groups.setdefault(str(clip[2].get(key)), []).append(clip)
    queues = [list(g) for _, g in sorted(groups.items())]
    ordered: list[LabelledClip] = []
    while any(queues):
        ordered.extend(queue.pop(0) for queue in queues if queue)
    return ordered


def subsample(clips: Sequence[LabelledClip], limit: int | None, key: str = "instrument") -> list[LabelledClip]:
    """The first ``limit`` clips of the round-robin order (all of them when ``limit`` is None)."""
    ordered = round_robin(clips, key)
    return ordered if limit is None else ordered[: int(limit)]


def split_evaluation_clips(clips: Sequence[LabelledClip], *, holdout_fraction: float, seed: int,
                           max_reference_clips: int | None) -> dict[str, list[LabelledClip]]:
    """``{"reference": ..., "heldout": ...}``: per instrument, a seeded share of the test clips is held out
    (the captions judged and the real ceiling); the rest, at most ``max_reference_clips`` of it, is the
    judges' reference (caption probes and KID), so no clip is judged against a probe fitted on it."""
    reference, heldout = split_reference(clips, holdout_fraction=float(holdout_fraction), seed=int(seed))
    return {"reference": subsample(reference, max_reference_clips), "heldout": heldout}


__all__ = ["round_robin", "split_evaluation_clips", "subsample"]
