"""The unwrap step's parts (training/tracked.py): the losses a pipeline reports, read back from a real MLflow
store, and the model record later steps read instead of loading the weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from stable_audio_ops.training.tracked import LossReport, attach_to_run, loss_metrics, model_record
from tests.tracking.tiny_models import use_sqlite_store


def test_loss_metrics_report_the_last_values_and_the_windowed_means(tmp_path: Path, monkeypatch) -> None:
    import mlflow

    use_sqlite_store(tmp_path, monkeypatch)
    with mlflow.start_run() as run:
        for step in range(20):  # a loss from 20 down to 1: first tenth = steps 0-1, last tenth = steps 18-19
            mlflow.log_metric("train/loss", 20.0 - step, step=step)
        mlflow.log_metric("train/stft", 0.5, step=19)
    run_id = run.info.run_id

    metrics = loss_metrics(run_id, LossReport(latest=("train/stft", "train/never_logged"), windowed="train/loss"))
    assert metrics == {"final_stft": {"value": 0.5, "step": 0},
                       "first_loss": {"value": 19.5, "step": 0}, "final_loss": {"value": 1.5, "step": 0}}
    assert loss_metrics(run_id, LossReport(windowed="train/absent")) == {}

    model = tmp_path / "model.safetensors"
    model.write_bytes(b"0123456789")
    attach_to_run(run_id, model, "autoencoder")
    assert [a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "autoencoder")] == [
        "autoencoder/model.safetensors"]


def test_model_record_names_the_file_its_size_and_where_it_came_from(tmp_path: Path) -> None:
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"0123456789")
    config = {"model_type": "autoencoder", "sample_size": 4096, "sample_rate": 16000, "model": {}}
    record = model_record(model, {"checkpoint_path": "run/last.ckpt", "mlflow_run_id": None}, config)
    assert record == {"path": str(model), "size_bytes": 10, "trained_from": "run/last.ckpt", "mlflow_run_id": None,
                      "model_type": "autoencoder", "sample_size": 4096, "sample_rate": 16000}
    with pytest.raises(FileNotFoundError):
        model_record(tmp_path / "missing.safetensors", {"checkpoint_path": "x"}, config)
