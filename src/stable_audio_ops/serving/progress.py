"""Sampler progress of one request, written by the model thread and read by the job endpoint.

Why a small mutable record on the request (and not a callback into the HTTP layer): the model runs in the
batcher's worker thread, the job view is built on the event loop; the worker only assigns two numbers
per step, the event loop only reads them. Python makes those single assignments atomic, so no lock is
needed, and a request retried alone after a failed shared call simply starts counting again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(eq=False)
class StepProgress:
    """``step`` of ``steps`` sampler steps done; timed from the first step of the model call."""

    steps: int
    step: int = 0
    started: float | None = None  # monotonic time the model call began (None while queued)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def begin(self) -> None:
        """The model call that holds this request starts (again, after a retry)."""
        self.step = 0
        self.started = self.clock()

    def advance(self, step: int) -> None:
        """``step`` sampler steps are done (the sampler callback's ``i`` + 1)."""
        self.step = max(0, min(int(step), self.steps))

    @property
    def fraction(self) -> float:
        return self.step / self.steps if self.steps else 0.0

    def eta_s(self) -> float | None:
        """Seconds until the last sampler step, from the mean time per step so far; None before the first
        step (no rate known yet). Decoding after the last step is not included: at ``step == steps`` it is 0."""
        if self.started is None or self.step == 0:
            return None
        elapsed = self.clock() - self.started
        return max(0.0, elapsed / self.step * (self.steps - self.step))

    def as_dict(self) -> dict[str, float | int | str | None]:
        """The job view's fields: ``progress`` as ``"i/steps"``, plus the numbers behind it."""
        eta = self.eta_s()
        return {"progress": f"{self.step}/{self.steps}", "step": self.step, "steps": self.steps,
                "fraction": round(self.fraction, 4), "eta_s": None if eta is None else round(eta, 2)}
