"""Judge a few-step student beside its teacher: the same held-out captions, the same seeds, each model with its
own sampler, steps and CFG, both timed per note and judged by the same judges in one table.

Why one function for both: the claim a few-step student makes ("as good as the teacher, N times faster") only
holds when both numbers come from the same captions, seeds, reference and judges in the same process; judging
them in two evaluation runs would let the caption choice or the machine's load move one side only. The real
clips (ceiling) and noise (floor) are judged once, beside both.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from stable_audio_ops.evaluation.generation import caption_targets, generate_for_captions
from stable_audio_ops.evaluation.judge import (
    REPORT_COLUMNS,
    JudgeReference,
    LabelledClip,
    calibration_sets,
    format_report,
    judge_sets,
)
from stable_audio_ops.evaluation.report import flatten_metrics
from stable_audio_ops.evaluation.selection import subsample
from stable_audio_ops.sampling.samplers import DEFAULT_SAMPLER
from stable_audio_ops.utils.jsonable import finite_or_null

log = logging.getLogger(__name__)

ROLES = ("teacher", "student")
WARMUP_STEPS = 2  # one caption, two steps: lazy initialisation happens before the clock starts, for both models
TABLE_COLUMNS = (*REPORT_COLUMNS, "steps", "cfg_scale", "seconds_per_note")


@dataclass(frozen=True)
class Contender:
    """One side of the comparison: a loaded generator and how it samples (``sampler`` None = its default)."""

    model: torch.nn.Module
    steps: int
    cfg_scale: float
    sampler: str | None = None
    model_type: str = "diffusion_cond"
    device: str | torch.device = "cpu"


def sampler_name(contender: Contender) -> str | None:
    """The sampler that runs: the configured one, else its model objective's default (the report names it)."""
    return contender.sampler or DEFAULT_SAMPLER.get(str(getattr(contender.model, "diffusion_objective", "")))


def timed_generation(contender: Contender, targets: Sequence[Mapping[str, Any]], *, clip_samples: int,
                     batch_size: int, seed: int) -> tuple[list[np.ndarray], float]:
    """Notes for ``targets`` and the wall seconds per note. A short warm-up generation runs first so that
    one-time costs (allocations, lazily built tables) do not land on whichever model happens to go first."""
    options = {"clip_samples": clip_samples, "cfg_scale": float(contender.cfg_scale), "sampler": contender.sampler,
               "device": contender.device, "model_type": contender.model_type}
    generate_for_captions(contender.model, targets[:1], steps=WARMUP_STEPS, batch_size=1, seed=seed, **options)
    started = time.perf_counter()
    notes = generate_for_captions(contender.model, targets, steps=int(contender.steps), batch_size=int(batch_size),
                                  seed=int(seed), **options)
    return notes, (time.perf_counter() - started) / len(targets)


def compare_teacher_student(teacher: Contender, student: Contender, heldout: Sequence[LabelledClip],
                            reference: JudgeReference, *, num_captions: int | None, batch_size: int, seed: int,
                            calibration: Sequence[str], judge_options: Mapping[str, Any]) -> dict[str, Any]:
    """Generate one note per held-out caption (the evaluation's round-robin choice) with each model, from the
    same seeds, and judge both beside the ``calibration`` sets.

    Returns ``{"captions": n, "rows": {"teacher": ..., "student": ..., "real": ..., "noise": ...}, "samplers":
    {...}, "speedup": teacher seconds per note / student's}``; the model rows hold the judges' numbers plus
    ``steps``, ``cfg_scale`` and ``seconds_per_note``.
    """
    chosen = subsample(heldout, num_captions)
    if not chosen:
        raise ValueError("compare_teacher_student: no held-out captions to generate for")
    targets = caption_targets(chosen)
    sets: dict[str, list[LabelledClip]] = {}
    timings: dict[str, float] = {}
    for role, contender in zip(ROLES, (teacher, student), strict=True):
        model_sr = int(contender.model.sample_rate)
        clip_samples = round(len(chosen[0][0]) * model_sr / int(chosen[0][1]))
        notes, timings[role] = timed_generation(contender, targets, clip_samples=clip_samples,
                                                batch_size=batch_size, seed=seed)
        sets[role] = [(audio, model_sr, t) for audio, t in zip(notes, targets, strict=True)]
        log.info("few_step: %s generated %d notes in %.3f s each (%d steps, cfg %.1f, sampler %s)", role,
                 len(notes), timings[role], contender.steps, contender.cfg_scale, sampler_name(contender))
    sets.update(calibration_sets(chosen, kinds=tuple(calibration), seed=int(seed)))
    rows = judge_sets(sets, reference, **judge_options)
    for role, contender in zip(ROLES, (teacher, student), strict=True):
        rows[role].update(steps=float(contender.steps), cfg_scale=float(contender.cfg_scale),
                          seconds_per_note=timings[role])
    speedup = timings["teacher"] / timings["student"] if timings["student"] > 0 else math.inf
    log.info("few_step judges (speed-up %.2fx):\n%s", speedup, format_report(rows, TABLE_COLUMNS))
    return {"captions": len(targets), "rows": rows, "speedup": speedup,
            "samplers": {role: sampler_name(c) for role, c in zip(ROLES, (teacher, student), strict=True)}}


def _num(value: Any, digits: int = 3) -> str:
    """A number for the report; missing or not finite -> an em dash."""
    return f"{value:.{digits}f}" if isinstance(value, int | float) and math.isfinite(value) else "—"


def _check_line(check: Mapping[str, Any]) -> str:
    """One goal check in words: what the student reached, what it needed, whether it did."""
    status = "ok" if check["passed"] else "MISSED"
    if check["metric"] == "speedup":
        return f"- speed-up {_num(check['student'], 2)}x (needs >= {_num(check['bound'], 2)}x): {status}"
    side = "at least" if check["mode"] == "max" else "at most"
    return (f"- {check['metric']}: student {_num(check['student'])} vs teacher {_num(check['teacher'])} "
            f"(needs {side} {_num(check['bound'])}, within {check['within']:g} of the teacher): {status}")


def few_step_report(comparison: Mapping[str, Any], goal: Mapping[str, Any]) -> tuple[dict[str, Any],
                                                                                      dict[str, dict[str, float]], str]:
    """(the JSON record, the numbers flattened for MLflow, the Markdown report) of a teacher/student comparison
    and its goal verdict (``goal``: ``met``, ``checks``, ``failures``, as the tracking layer judges it).

    One builder so the three views hold the same numbers.
    """
    record = finite_or_null({"captions": int(comparison["captions"]), "speedup": float(comparison["speedup"]),
                             "samplers": dict(comparison["samplers"]),
                             "rows": {name: dict(row) for name, row in comparison["rows"].items()},
                             "goal": dict(goal)})
    flat = flatten_metrics({"speedup": float(comparison["speedup"]), "goal_met": int(bool(goal["met"])),
                            **{name: dict(row) for name, row in comparison["rows"].items()}})
    teacher, student = comparison["rows"]["teacher"], comparison["rows"]["student"]
    samplers = comparison["samplers"]
    verdict = "MET" if goal["met"] else "NOT MET"
    lines = ["# Few-step student vs its teacher", "",
             f"{comparison['captions']} held-out test captions, the same seeds for both models. Teacher: "
             f"{int(teacher['steps'])} steps, CFG {teacher['cfg_scale']:g}, sampler {samplers['teacher'] or 'default'}; "
             f"student: {int(student['steps'])} steps, CFG {student['cfg_scale']:g}, sampler "
             f"{samplers['student'] or 'default'}.", "",
             "## Judges (real = ceiling, noise = floor)", "", format_report(comparison["rows"], TABLE_COLUMNS),
             "## Speed", "",
             f"- teacher {teacher['seconds_per_note']:.4f} s per note, student {student['seconds_per_note']:.4f} s "
             f"per note: {comparison['speedup']:.2f}x faster", "",
             f"## Goal: {verdict}", "", *(_check_line(check) for check in goal["checks"]), ""]
    if goal["failures"]:
        lines += ["Missed: " + "; ".join(goal["failures"]), ""]
    return record, flat, "\n".join(lines)


__all__ = ["Contender", "compare_teacher_student", "few_step_report", "sampler_name", "timed_generation"]
