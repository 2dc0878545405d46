"""Job store for the asynchronous API: submit -> id -> poll -> fetch, for generations longer than a request.

Why a store with expiry: results are audio bytes held in memory, so finished jobs are dropped
``ttl_s`` after they finish and at most ``max_jobs`` finished jobs are kept (oldest first out).
Waiting jobs are bounded by the batcher's queue, so the store cannot grow without limit.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stable_audio_ops.serving.batcher import WorkRequest


@dataclass(eq=False)
class Job:
    id: str
    work: WorkRequest
    params: dict[str, Any]
    created: float  # wall-clock (time.time) for the API
    created_mono: float
    finished_mono: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """queued | running | succeeded | failed | cancelled."""
        future = self.work.future
        if not future.done():
            return "running" if self.work.state == "running" else "queued"
        if future.cancelled():
            return "cancelled"
        return "failed" if future.exception() is not None else "succeeded"

    @property
    def error(self) -> str | None:
        future = self.work.future
        if future.done() and not future.cancelled() and future.exception() is not None:
            return str(future.exception())
        return None

    @property
    def result(self) -> Any:
        """The batcher's result for this job (only when ``status == "succeeded"``)."""
        return self.work.future.result()


class JobStore:
    """In-memory jobs by id; finished jobs expire ``ttl_s`` after finishing, at most ``max_jobs`` kept."""

    def __init__(self, ttl_s: float, max_jobs: int, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.max_jobs = max_jobs
        self.clock = clock
        self._jobs: dict[str, Job] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, work: WorkRequest, params: dict[str, Any], **extra: Any) -> Job:
        self.purge()
        job = Job(id=secrets.token_hex(12), work=work, params=params, created=time.time(),
                  created_mono=self.clock(), extra=dict(extra))
        work.future.add_done_callback(lambda _f: self._finished(job))
        self._jobs[job.id] = job
        return job

    def _finished(self, job: Job) -> None:
        job.finished_mono = self.clock()
        if job.work.future.done() and not job.work.future.cancelled():
            job.work.future.exception()  # mark retrieved: a failed job is reported by polling, not logged

    def get(self, job_id: str) -> Job | None:
        self.purge()
        return self._jobs.get(job_id)

    def delete(self, job_id: str) -> bool:
        """Forget a job; a job still waiting is cancelled (it never reaches the model)."""
        job = self._jobs.pop(job_id, None)
        if job is None:
            return False
        if not job.work.future.done():
            job.work.future.cancel()
        return True

    def purge(self) -> None:
        now = self.clock()
        finished = [j for j in self._jobs.values() if j.finished_mono is not None]
        for job in finished:
            if now - job.finished_mono >= self.ttl_s:
                del self._jobs[job.id]
        finished = sorted((j for j in self._jobs.values() if j.finished_mono is not None),
                          key=lambda j: j.finished_mono)
        for job in finished[: max(0, len(finished) - self.max_jobs)]:
            del self._jobs[job.id]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for job in self._jobs.values():
            out[job.status] = out.get(job.status, 0) + 1
        return out

