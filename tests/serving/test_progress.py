"""Sampler progress of one request: what the job view reports while the model works."""

from __future__ import annotations

import pytest

from stable_audio_ops.serving.progress import StepProgress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_queued_request_has_no_eta_and_zero_progress():
    progress = StepProgress(50, clock=FakeClock())
    assert progress.as_dict() == {"progress": "0/50", "step": 0, "steps": 50, "fraction": 0.0, "eta_s": None}


def test_eta_extrapolates_the_time_per_step_so_far():
    clock = FakeClock()
    progress = StepProgress(50, clock=clock)
    progress.begin()
    clock.now += 10.0
    progress.advance(10)  # 1 s per step, 40 steps left
    view = progress.as_dict()
    assert view["progress"] == "10/50" and view["fraction"] == 0.2
    assert view["eta_s"] == pytest.approx(40.0)
    clock.now += 40.0
    progress.advance(50)
    assert progress.eta_s() == 0.0 and progress.as_dict()["progress"] == "50/50"


def test_a_retried_call_counts_again_and_steps_stay_in_range():
    clock = FakeClock()
    progress = StepProgress(8, clock=clock)
    progress.begin()
    progress.advance(5)
    progress.begin()  # the shared call failed; this request runs again alone
    assert progress.step == 0 and progress.eta_s() is None
    progress.advance(99)  # an adaptive sampler may report more steps than asked for
    assert progress.step == 8
