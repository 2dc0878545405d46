"""The few-step student's goal against its teacher (issue 13): margins become floors built from the teacher's
numbers, better than the teacher always passes, each miss is named with the teacher's value and the bound, and a
malformed goal names its key. (Promotion by the verdict: tests/pipelines/test_few_step.py.)"""

from __future__ import annotations

import math

import pytest

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.tracking.few_step import few_step_goal, goal_tags

GOAL = {"margins": {"pitch_acc_crepe": {"mode": "max", "within": 0.05}, "inst_acc": {"mode": "max", "within": 0.05},
                    "kid": {"mode": "min", "within": 1.0}},
        "min_speedup": 5.0}
TEACHER = {"pitch_acc_crepe": 0.90, "inst_acc": 0.80, "kid": 3.0}


def test_a_student_within_the_margins_and_fast_enough_meets_the_goal() -> None:
    # worse than the teacher but within the margins; better than the teacher on KID (one-sided: passes)
    verdict = few_step_goal(TEACHER, {"pitch_acc_crepe": 0.86, "inst_acc": 0.76, "kid": 1.5}, 6.25, GOAL)
    assert verdict["met"] and verdict["failures"] == []
    bounds = {c["metric"]: c["bound"] for c in verdict["checks"]}
    assert bounds == pytest.approx({"pitch_acc_crepe": 0.85, "inst_acc": 0.75, "kid": 4.0, "speedup": 5.0})
    tags = goal_tags(verdict)
    assert tags["goal.met"] == "true" and tags["goal.failures"] == "none"
    assert float(tags["goal.inst_acc.teacher"]) == 0.8 and float(tags["goal.kid.bound"]) == 4.0


def test_each_miss_is_named_with_the_teachers_value_and_the_bound() -> None:
    student = {"pitch_acc_crepe": 0.86, "inst_acc": 0.70, "kid": 4.5}
    verdict = few_step_goal(TEACHER, student, 3.2, GOAL)
    assert not verdict["met"]
    assert verdict["failures"] == ["inst_acc 0.70 < floor 0.75 (teacher 0.8 - 0.05)",
                                   "kid 4.50 > ceiling 4.00 (teacher 3 + 1)",
                                   "speedup 3.20 < floor 5.00"]
    # a student or teacher value the judges could not give proves nothing: the goal is missed, not assumed
    verdict = few_step_goal({**TEACHER, "inst_acc": math.nan}, {**student, "inst_acc": 0.9, "pitch_acc_crepe": None},
                            6.0, GOAL)
    assert verdict["failures"][:2] == ["pitch_acc_crepe missing (floor 0.85) (teacher 0.9 - 0.05)",
                                       "teacher's inst_acc missing: nothing to be within 0.05 of"]


def test_a_malformed_goal_names_its_key() -> None:
    for goal, key in (({**GOAL, "margins": {"kid": {"mode": "lower", "within": 1.0}}}, "margins.kid.mode"),
                      ({**GOAL, "margins": {"kid": {"mode": "min", "within": -1}}}, "margins.kid.within"),
                      ({**GOAL, "margins": {"kid": 1.0}}, "margins.kid"),
                      ({"margins": GOAL["margins"]}, "min_speedup"),
                      ({**GOAL, "max_speedup": 2}, "max_speedup")):
        with pytest.raises(ConfigError, match=f"parameters_few_step.yml: {key}"):
            few_step_goal(TEACHER, TEACHER, 6.0, goal, source="parameters_few_step.yml")
