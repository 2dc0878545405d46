"""Register an ARC few-step student with its teacher as lineage.

Why checked, not declared: the student starts from the teacher's weights, but what identifies the teacher is
its weights file. Hashing the teacher's tensors and finding the registered version of ``teacher_name`` with the
same ``weights_sha256`` names the version for certain (``teacher_lineage: verified``); an unregistered teacher
is recorded by path and hash only (``unregistered``), never guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stable_audio_ops.models.checkpoints import load_ckpt_state_dict
from stable_audio_ops.tracking.lineage import UNKNOWN, lineage_tags, state_dict_sha256
from stable_audio_ops.tracking.registry import find_version_by_weights, log_model_to_registry

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
                              metrics: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Register the unwrapped student as a version of ``name`` (alias ``challenger``) tagged with its teacher
    (:func:`teacher_tags`), the training run, commit and data, how it is meant to sample (``sampling``, e.g.
    ``{"sampler_type": "pingpong", "steps": 8}``) and ``metrics`` as ``eval.<name>``. Returns the registration
    plus the tags."""
    tags = {**lineage_tags(), "training_run_id": training_run_id or UNKNOWN, **teacher_tags(teacher_path, teacher_name),
            **{f"sampling.{k}": str(v) for k, v in sampling.items()},
            **{f"eval.{k}": f"{float(v):.6g}" for k, v in (metrics or {}).items()}}
    version = log_model_to_registry(path, name, tags=tags, artifact_name="few_step", training_run_id=training_run_id)
    log.info("registry: %s version %s (%s), few-step student of %s version %s", version.name, version.version,
             "new" if version.new else "existing", teacher_name, tags["teacher_version"])
    return {**version.to_dict(), **tags}


__all__ = ["register_few_step_student", "teacher_tags"]
