"""`kedro run` with two training processes (num_gpus: 2 on CPU): one Kedro session, one MLflow run.

Lightning's DDP re-executes the command line for rank 1; inside a Kedro node that would start a
second `kedro run`. The node therefore launches training as its own process. This checks the
result a user sees: a single MLflow run holding rank 0's metrics once per step, both ranks trained
to identical weights, and the unwrapped model loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, load_state_dict_checked
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.distributed import read_rank_reports
from tests.pipelines.conftest import _edit_yaml, run_kedro

pytestmark = pytest.mark.slow


def test_autoencoder_pipeline_with_two_processes(kedro_project: Path) -> None:
    def two_processes(params: dict) -> None:
        params["autoencoder"]["train"].update(num_gpus=2, accelerator="cpu", strategy="auto")

    _edit_yaml(kedro_project / "conf" / "base" / "parameters_autoencoder.yml", two_processes)
    (kedro_project / "data" / "01_raw" / "extra").mkdir(parents=True, exist_ok=True)  # the fixture's 2nd raw dir
    result = run_kedro(kedro_project, "--pipelines=data_preparation,autoencoder")
    output = result.stdout + result.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    assert "strategy auto -> ddp over gloo" in output

    checkpoints = kedro_project / "data/06_models/autoencoder/checkpoints"
    reports = read_rank_reports(checkpoints / "ranks")
    assert [r["global_rank"] for r in reports] == [0, 1]
    assert all(r["world_size"] == 2 and r["batches"] == 6 for r in reports)
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"]

    model_config = json.loads((kedro_project / "conf/base/model_configs/autoencoder_demo.json").read_text())
    model = create_model_from_config(model_config)
    load_state_dict_checked(model, load_ckpt_state_dict(kedro_project / "data/06_models/autoencoder.safetensors"))

    client = MlflowClient(tracking_uri=f"sqlite:///{kedro_project / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("stable-audio-ops")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # no second Kedro session, no run of rank 1's own
    run = runs[0]
    assert run.data.params["autoencoder.train.num_gpus"] == "2"
    assert run.data.params["train.num_gpus"] == "2"  # the training process logged into the same run
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert steps == [1, 3, 5]  # rank 0 only: each generator step once
    assert run.data.metrics["data.readable"] == 8  # data_preparation ran once, in this run
