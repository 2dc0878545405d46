"""The training run's MLflow logger: a run the pipeline opened stays open for it to end, a run the logger
opened is ended; the run records its flags and flattened configs."""

from __future__ import annotations

from pathlib import Path

from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.training.mlflow_logger import flatten, log_run_inputs, make_logger
from stable_audio_ops.training.options import TrainOptions
from tests.tracking.tiny_models import use_sqlite_store


def test_a_run_opened_by_the_pipeline_stays_open_and_the_logger_s_own_run_ends(tmp_path: Path, monkeypatch) -> None:
    import mlflow

    uri = use_sqlite_store(tmp_path, monkeypatch)
    client = mlflow.MlflowClient(uri)
    with mlflow.start_run() as outer:
        logger = make_logger(TrainOptions(mlflow_tracking_uri=uri, mlflow_run_id=outer.info.run_id))
        dataset = validate_dataset_config({"dataset_type": "audio_dir", "datasets": [{"id": "a", "path": "/x"}]})
        log_run_inputs(logger, TrainOptions(name="ae", batch_size=2), {"model": {"depth": 3}}, dataset)
        logger.finalize("success")
        assert client.get_run(outer.info.run_id).info.status == "RUNNING"
    params = client.get_run(outer.info.run_id).data.params
    assert params["train.name"] == "ae" and params["model_config.model.depth"] == "3"
    assert params["dataset_config.drop_last"] == "true"  # the dataset config as the run read it, defaults included
    assert sorted(a.path for a in client.list_artifacts(outer.info.run_id, "configs")) == [
        "configs/dataset_config.json", "configs/model_config.json"]

    own = make_logger(TrainOptions(mlflow_tracking_uri=uri, name="own"))
    run_id = own.run_id
    own.finalize("success")
    assert client.get_run(run_id).info.status == "FINISHED"
    assert make_logger(TrainOptions(logger="none")) is None


def test_flatten_keeps_lists_whole() -> None:
    assert flatten("m", {"a": {"b": 1}, "c": [1, 2], "d": "x", "e": {}}, {}) == {
        "m.a.b": "1", "m.c": "[1, 2]", "m.d": "x", "m.e": "{}"}
