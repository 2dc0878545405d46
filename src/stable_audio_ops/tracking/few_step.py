"""Register an ARC few-step student with its teacher as lineage.

Why checked, not declared: the student starts from the teacher's weights, but what identifies the teacher is
its weights file. Hashing the teacher's tensors and finding the registered version of ``teacher_name`` with the
same ``weights_sha256`` names the version for certain (``teacher_lineage: verified``); an unregistered teacher
is recorded by path and hash only (``unregistered``), never guessed.

The goal (issue 13: an 8-step student within 0.05 of the 50-step teacher's pitch and instrument accuracy and within
1.0 of its KID, at least 5x faster) is relative to the teacher, so its floors are built from the teacher's numbers
on the same captions (:func:`few_step_goal`) and then decide like every other floor: a student that misses its
goal is registered with the verdict but never promoted (:func:`promote_few_step_student`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict
from stable_audio_ops.tracking.floors import Floor, finite_or_none, parse_floors, promotion_blockers
from stable_audio_ops.tracking.lineage import UNKNOWN, lineage_tags, state_dict_sha256
from stable_audio_ops.tracking.promotion import metric_view
from stable_audio_ops.tracking.registry import (
    find_version_by_weights,
    log_model_to_registry,
    promote_if_better,
)
from stable_audio_ops.utils.jsonable import finite_or_null

log = logging.getLogger(__name__)


def teacher_tags(teacher_path: str | Path, teacher_name: str) -> dict[str, str]:
    """``teacher_model``, ``teacher_version`` (or ``unregistered``), ``teacher_weights_sha256``,
    ``teacher_source_path`` and ``teacher_lineage``."""
    sha = state_dict_sha256(load_ckpt_state_dict(teacher_path))
    match = find_version_by_weights(teacher_name, sha)
    tags = {"teacher_model": teacher_name, "teacher_weights_sha256": sha, "teacher_source_path": str(teacher_path)}
    if match is not None:
        return {**tags, "teacher_version": str(match.version),
                "teacher_lineage": "verified (weights equal the registered version)"}
    return {**tags, "teacher_version": "unregistered",
            "teacher_lineage": f"unregistered (no version of {teacher_name} holds these weights)"}


def register_few_step_student(path: str | Path, name: str, *, teacher_path: str | Path, teacher_name: str,
                              sampling: Mapping[str, Any], training_run_id: str | None = None,
                              metrics: Mapping[str, float] | None = None,
                              goal: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Register the unwrapped student as a version of ``name`` (alias ``challenger``) tagged with its teacher
    (:func:`teacher_tags`), the training run, commit and data, how it is meant to sample (``sampling``, e.g.
    ``{"sampler_type": "pingpong", "steps": 8}``), ``metrics`` as ``eval.<name>`` and the goal verdict of
    :func:`few_step_goal` as ``goal.*`` (:func:`goal_tags`). Returns the registration plus the tags."""
    tags = {**lineage_tags(), "training_run_id": training_run_id or UNKNOWN, **teacher_tags(teacher_path, teacher_name),
            **{f"sampling.{k}": str(v) for k, v in sampling.items()},
            **{f"eval.{k}": f"{float(v):.6g}" for k, v in (metrics or {}).items()},
            **(goal_tags(goal) if goal is not None else {})}
    version = log_model_to_registry(path, name, tags=tags, artifact_name="few_step", training_run_id=training_run_id)
    log.info("registry: %s version %s (%s), few-step student of %s version %s", version.name, version.version,
             "new" if version.new else "existing", teacher_name, tags["teacher_version"])
    return {**version.to_dict(), **tags}


# --------------------------------------------------------------------------- the goal against the teacher

GOAL_MODES = ("max", "min")


def _margins(raw: Any, source: str) -> dict[str, tuple[str, float]]:
    """``{metric: {mode: max|min, within: x}}`` -> ``{metric: (mode, within)}``, each error naming its key."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(source, "margins", f"a non-empty mapping metric -> {{mode, within}} is needed, got {raw!r}")
    margins: dict[str, tuple[str, float]] = {}
    for metric, spec in raw.items():
        key = f"margins.{metric}"
        if not isinstance(spec, Mapping) or set(spec) != {"mode", "within"}:
            raise ConfigError(source, key, f"expected {{mode: max|min, within: x}}, got {spec!r}")
        if spec["mode"] not in GOAL_MODES:
            raise ConfigError(source, f"{key}.mode", f"mode must be 'max' or 'min', got {spec['mode']!r}")
        within = finite_or_none(spec["within"])
        if within is None or within < 0 or isinstance(spec["within"], bool):
            raise ConfigError(source, f"{key}.within", f"a finite number >= 0 is needed, got {spec['within']!r}")
        margins[str(metric)] = (str(spec["mode"]), within)
    return margins


def few_step_goal(teacher: Mapping[str, Any], student: Mapping[str, Any], speedup: float,
                  goal: Mapping[str, Any], source: str = "few_step.goal") -> dict[str, Any]:
    """Does the student meet its goal against the teacher (both judged on the same captions)?

    ``goal`` is ``{"margins": {metric: {"mode": "max"|"min", "within": x}}, "min_speedup": s}``: for a ``max``
    metric the student needs at least the teacher's value minus ``within``, for a ``min`` metric (KID) at most
    the teacher's plus ``within`` (one-sided: a student better than its teacher passes), and ``speedup`` (teacher
    seconds per note / student's) at least ``min_speedup``. These become :class:`Floor` s, so a missing or NaN
    student value fails; a teacher value that is not finite fails too (nothing to be within). Returns ``met``,
    each check with its bound, and ``failures`` in words.
    """
    if not isinstance(goal, Mapping):
        raise ConfigError(source, "", f"the goal is a mapping with margins and min_speedup, got {goal!r}")
    unknown = set(goal) - {"margins", "min_speedup"}
    if unknown:
        raise ConfigError(source, sorted(unknown)[0], "unknown goal key (known: margins, min_speedup)")
    if "min_speedup" not in goal or finite_or_none(goal["min_speedup"]) is None:
        raise ConfigError(source, "min_speedup", f"a finite number is needed, got {goal.get('min_speedup')!r}")
    checks: list[dict[str, Any]] = []
    failures: list[str] = []
    for metric, (mode, within) in _margins(goal.get("margins"), source).items():
        reference = finite_or_none(teacher.get(metric))
        value = finite_or_none(student.get(metric))
        if reference is None:
            bound, why = None, f"teacher's {metric} missing: nothing to be within {within:g} of"
        else:
            bound = reference - within if mode == "max" else reference + within
            floor = Floor(metric, minimum=bound) if mode == "max" else Floor(metric, maximum=bound)
            failed = floor.failure(student)
            why = f"{failed} (teacher {reference:.3g} {'-' if mode == 'max' else '+'} {within:g})" if failed else None
        checks.append({"metric": metric, "mode": mode, "within": within, "teacher": reference, "student": value,
                       "bound": bound, "passed": why is None})
        failures += [why] if why else []
    min_speedup = float(goal["min_speedup"])
    failed = Floor("speedup", minimum=min_speedup).failure({"speedup": speedup})
    checks.append({"metric": "speedup", "mode": "max", "within": None, "teacher": None,
                   "student": finite_or_none(speedup), "bound": min_speedup, "passed": failed is None})
    failures += [failed] if failed else []
    return finite_or_null({"met": not failures, "checks": checks, "failures": failures})


def goal_tags(verdict: Mapping[str, Any]) -> dict[str, str]:
    """The verdict as registry tags: ``goal.met``, ``goal.failures`` and per check ``goal.<metric>.teacher`` /
    ``.bound`` (what the student's ``eval.<metric>`` was held against)."""
    tags = {"goal.met": "true" if verdict["met"] else "false",
            "goal.failures": "; ".join(verdict["failures"]) or "none"}
    for check in verdict["checks"]:
        for key in ("teacher", "bound"):
            if check.get(key) is not None:
                tags[f"goal.{check['metric']}.{key}"] = f"{float(check[key]):.6g}"
    return tags


def promote_few_step_student(registration: Mapping[str, Any], metrics: Mapping[str, Any],
                             verdict: Mapping[str, Any], *, rule: Sequence[Mapping[str, Any]],
                             floors: Mapping[str, Any] | None,
                             floors_source: str = "evaluation.promotion.floors.latent_diffusion") -> dict[str, Any]:
    """Move ``champion`` of the student's registered model to this version when it meets its goal, passes the
    generators' absolute ``floors`` and beats the current champion under ``rule``
    (:func:`~stable_audio_ops.tracking.registry.promote_if_better`); a missed goal is a blocker like a failed
    floor, so the version stays ``challenger`` and its ``promotion_reason`` names what it missed."""
    student = metric_view(metrics)
    parsed = parse_floors(floors, floors_source)
    blockers = [f"goal against the teacher: {why}" for why in verdict["failures"]]
    blockers += promotion_blockers(student, parsed)
    decision = promote_if_better(registration["name"], registration["version"], student, rule, blockers=blockers)
    decision["floors"] = {f.metric: {"min": f.minimum, "max": f.maximum} for f in parsed}
    decision["goal_met"] = bool(verdict["met"])
    log.info("promotion few-step v%s: %s (%s)", decision["version"],
             "PROMOTED to champion" if decision["promoted"] else "not promoted", decision["reason"])
    return finite_or_null(decision)


__all__ = ["few_step_goal", "goal_tags", "promote_few_step_student", "register_few_step_student", "teacher_tags"]
