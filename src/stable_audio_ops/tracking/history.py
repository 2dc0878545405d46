"""Metric histories of training runs, read back from MLflow (for the report's loss curves)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def loss_history(run_id: str | None) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(step, value), ...]}`` of a run's ``train*`` loss metrics; empty (with a warning) when there
    is no run id or the run cannot be read, so a report without training history still renders."""
    if not run_id:
        return {}
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        keys = [k for k in client.get_run(run_id).data.metrics if "loss" in k and k.startswith("train")]
        return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}
    except MlflowException as exc:
        log.warning("no loss history for run %s: %s", run_id, exc)
        return {}


__all__ = ["loss_history"]
