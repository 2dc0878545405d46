"""Judges for models that generate without a caption (``diffusion_uncond``, an unconditional ``lm``): is what they
make a note at all, and does it sound like the real notes?

Without a target there is no "right" pitch to check, so the pitch judge asks a weaker question: is the clip's f0
(the project's ACF / CREPE trackers, :mod:`.pitch`) within ``±cents`` of an equal-tempered note inside the data's
MIDI range? That is the **pitched accuracy**. Unpitched audio (white noise, clicks, mush) has no f0 and scores 0;
a real demo note scores ~1. At ±50 cents every f0 is near some semitone, so the default asks "does the tracker hear
one steady pitch inside the range"; a smaller ``cents`` also judges tuning (``median_abs_cents`` reports it). Both are judged beside the model (``real`` held-out clips, RMS-matched white
``noise``) so the number has a ceiling and a floor. KID/FD on the aiSFX embedding (:mod:`.distribution`) against
a reference part of the real clips says how close the sound is, which the pitch judge cannot see.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stable_audio_ops.evaluation._audio import to_mono
from stable_audio_ops.evaluation.distribution import distribution_distances
from stable_audio_ops.evaluation.embeddings import Embedder, get_embedder
from stable_audio_ops.evaluation.pitch import acf_f0, crepe_f0

Clip = tuple[Any, int]  # (audio [n] / [C, n], sample rate)
PITCHED_JUDGES = ("acf", "crepe")
SETS = ("generated", "real", "noise")


def nearest_note(f0_hz: float) -> tuple[float, float]:
    """(nearest equal-tempered MIDI note, signed cents from it) of ``f0_hz``; (NaN, NaN) for no estimate."""
    if f0_hz is None or not np.isfinite(f0_hz) or f0_hz <= 0:
        return float("nan"), float("nan")
    midi = 69.0 + 12.0 * math.log2(float(f0_hz) / 440.0)
    note = float(round(midi))
    return note, 100.0 * (midi - note)


def pitched_accuracy(f0s: Sequence[float], *, midi_low: int, midi_high: int, cents: float = 50.0) -> dict[str, float]:
    """Share of clips whose f0 is within ``±cents`` of a note in ``[midi_low, midi_high]``.

    Also ``no_estimate`` (share with no f0: unpitched), ``out_of_range`` (pitched, but on a note outside the range
    or too far between notes) and ``median_abs_cents`` over the pitched clips (how in tune they are)."""
    if midi_low > midi_high:
        raise ValueError(f"pitched_accuracy: midi_low {midi_low} > midi_high {midi_high}")
    n = len(f0s)
    if n == 0:
        return {"accuracy": float("nan"), "no_estimate": float("nan"), "out_of_range": float("nan"),
                "median_abs_cents": float("nan"), "n": 0}
    notes = [nearest_note(f) for f in f0s]
    estimated = np.array([math.isfinite(note) for note, _ in notes])
    hits = np.array([math.isfinite(note) and midi_low <= note <= midi_high and abs(off) <= cents
                     for note, off in notes])
    offsets = [abs(off) for (note, off), hit in zip(notes, hits, strict=True) if hit]
    return {"accuracy": float(hits.mean()), "no_estimate": float((~estimated).mean()),
            "out_of_range": float((estimated & ~hits).mean()),
            "median_abs_cents": float(np.median(offsets)) if offsets else float("nan"), "n": n}


def midi_range(clips: Sequence[tuple[Any, int, Mapping[str, Any]]],
               configured: Sequence[int] | None = None) -> tuple[int, int]:
    """The MIDI range a pitched clip must lie in: ``configured`` ([low, high]) or the range of the labelled real
    clips' ``midi`` (the demo notes' range, however data_preparation rendered them)."""
    if configured is not None:
        low, high = (int(v) for v in configured)
        return low, high
    midis = [int(meta["midi"]) for _, _, meta in clips if meta.get("midi") is not None]
    if not midis:
        raise ValueError("the real clips carry no midi labels: configure the MIDI range ([low, high])")
    return min(midis), max(midis)


def clip_f0s(clips: Sequence[Clip], judge: str, crepe_model: str = "tiny") -> list[float]:
    """Clip f0 (Hz, NaN when unpitched) of each clip by ``judge`` (``acf`` | ``crepe``)."""
    if judge == "acf":
        return [acf_f0(audio, int(sr)) for audio, sr in clips]
    if judge == "crepe":
        return [crepe_f0(audio, int(sr), model=crepe_model) for audio, sr in clips]
    raise ValueError(f"unknown pitch judge {judge!r}; known: {', '.join(PITCHED_JUDGES)}")


def noise_like(clips: Sequence[Clip], seed: int = 0) -> list[Clip]:
    """White Gaussian noise with each clip's length, rate and RMS: the floor every judge must separate from."""
    rng = np.random.default_rng(seed)
    out = []
    for audio, sr in clips:
        mono = to_mono(audio).astype(np.float64)
        rms = float(np.sqrt(np.mean(np.square(mono)))) if mono.size else 0.0
        out.append(((rms * rng.standard_normal(mono.size)).astype(np.float32), int(sr)))
    return out


def judge_unconditional(generated: Sequence[Clip], real: Sequence[Clip], *, midi_low: int, midi_high: int,
                        pitch_judges: Sequence[str] = PITCHED_JUDGES, crepe_model: str = "tiny", cents: float = 50.0,
                        reference: Sequence[Clip] | None = None, embedder: str | Embedder | None = "aisfx",
                        kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0
                        ) -> dict[str, dict[str, float]]:
    """Judge ``generated`` clips beside the held-out ``real`` clips (ceiling) and noise matched to them (floor).

    Returns ``{"generated" | "real" | "noise": {"n", "pitched_acc_<judge>", "pitched_no_estimate_<judge>",
    "pitched_median_cents_<judge>", and with an ``embedder`` and a ``reference`` set "kid", "kid_std", "fd"}}``
    (flat floats, MLflow-ready). ``reference`` (real clips not in ``real``) is what KID compares each set with, so
    the real row's KID is the two-samples-of-one-distribution floor (~0)."""
    if not generated or not real:
        raise ValueError(f"judge_unconditional: need generated and real clips, got {len(generated)} and {len(real)}")
    sets = {"generated": list(generated), "real": list(real), "noise": noise_like(real, seed)}
    results: dict[str, dict[str, float]] = {name: {"n": float(len(clips))} for name, clips in sets.items()}
    for judge in pitch_judges:
        for name, clips in sets.items():
            acc = pitched_accuracy(clip_f0s(clips, judge, crepe_model), midi_low=midi_low, midi_high=midi_high,
                                   cents=cents)
            results[name].update({f"pitched_acc_{judge}": acc["accuracy"],
                                  f"pitched_no_estimate_{judge}": acc["no_estimate"],
                                  f"pitched_median_cents_{judge}": acc["median_abs_cents"]})
    if embedder is not None and reference:
        embed = get_embedder(embedder)
        reference_embeddings = embed([(audio, int(sr)) for audio, sr in reference])
        for name, clips in sets.items():
            if len(clips) < 2 or len(reference) < 2:
                results[name].update({"kid": float("nan"), "kid_std": float("nan"), "fd": float("nan")})
                continue
            embeddings = embed([(audio, int(sr)) for audio, sr in clips])
            results[name].update(distribution_distances(reference_embeddings, embeddings, subsets=kid_subsets,
                                                        subset_size=kid_subset_size, seed=seed))
    return results


def unconditional_report_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """A Markdown table of :func:`judge_unconditional`'s result, one row per set (generated, real, noise)."""
    columns = [c for c in ("pitched_acc_acf", "pitched_acc_crepe", "pitched_median_cents_acf",
                           "pitched_median_cents_crepe", "kid", "kid_std", "fd")
               if any(c in row for row in results.values())]
    lines = ["| set | n | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for name, row in results.items():
        cells = ["—" if not math.isfinite(float(row.get(c, float("nan")))) else f"{float(row[c]):.3f}"
                 for c in columns]
        lines.append(f"| {name} | {int(row.get('n', 0))} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def flat_metrics(results: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """``<set>.<metric>`` -> value (e.g. ``generated.pitched_acc_acf``), finite values only (MLflow refuses NaN)."""
    return {f"{name}.{key}": float(value) for name, row in results.items() for key, value in row.items()
            if math.isfinite(float(value))}


__all__ = ["PITCHED_JUDGES", "SETS", "clip_f0s", "flat_metrics", "judge_unconditional", "midi_range", "nearest_note",
           "noise_like", "pitched_accuracy", "unconditional_report_table"]
