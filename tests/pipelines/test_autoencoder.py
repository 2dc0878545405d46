"""The autoencoder pipeline by Kedro's SequentialRunner over a DataCatalog, and its unwrap node on upstream's
parity checkpoint: what a user gets is a model-only file that loads strictly and says where it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from kedro.pipeline import node, pipeline
from safetensors.torch import load_file

from pipelines.autoencoder.nodes import unwrap_autoencoder
from stable_audio_ops.models.checkpoints import (
    load_ckpt_state_dict,
    load_state_dict_checked,
    read_embedded_model_config,
)
from stable_audio_ops.models.factory import create_model_from_config
from tests.parity.harness import load_case
from tests.pipelines.conftest import TINY_AE, autoencoder_datasets, run_pipeline


@pytest.mark.slow
def test_autoencoder_pipeline_trains_and_unwraps_a_model_that_loads(autoencoder_run) -> None:
    result, model = autoencoder_run["autoencoder_training_result"], autoencoder_run["autoencoder_model"]
    root = autoencoder_run["root"]
    # the run folder and the record are where the catalog's datasets put them
    assert Path(result["checkpoint_path"]) == root / "autoencoder" / "checkpoints" / "last.ckpt"
    assert json.loads((root / "autoencoder_training.json").read_text()) == result
    assert result["max_steps"] == 6 and result["mlflow_run_id"] is None  # no MLflow run: nothing logged
    assert autoencoder_run["autoencoder_metrics"] == {}

    # the unwrapped file is the catalog's path, embeds the config that trained it and loads strictly
    assert Path(model["path"]) == root / "autoencoder.safetensors"
    assert model["trained_from"] == result["checkpoint_path"] and model["model_type"] == "autoencoder"
    config = read_embedded_model_config(model["path"])
    assert config == json.loads(TINY_AE.read_text())
    load_state_dict_checked(create_model_from_config(config), load_ckpt_state_dict(model["path"]), strict=True)


def test_unwrap_autoencoder_node_exports_upstreams_ema_weights(tmp_path: Path) -> None:
    """The node, run by Kedro over the catalog's dataset, puts exactly upstream's export at the catalog path."""
    case = load_case("unwrap_autoencoder")
    training_result = {"checkpoint_path": str(case.root / "wrapped.ckpt"), "mlflow_run_id": None}
    unwrap = pipeline([node(unwrap_autoencoder, inputs=["autoencoder_training_result", "autoencoder_model_config"],
                            outputs=["autoencoder_model", "autoencoder_metrics"])])
    out = run_pipeline(unwrap, {"autoencoder_training_result": training_result,
                                "autoencoder_model_config": case.model_config},
                       datasets={"autoencoder_model": autoencoder_datasets(tmp_path)["autoencoder_model"]})
    info, metrics = out["autoencoder_model"], out["autoencoder_metrics"]
    assert info["path"] == str(tmp_path / "autoencoder.safetensors") and metrics == {}
    assert info["size_bytes"] == (tmp_path / "autoencoder.safetensors").stat().st_size > 0
    assert json.loads((tmp_path / "autoencoder_model.json").read_text()) == info  # the record the catalog keeps
    got, expected = load_file(info["path"]), case.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        atol, rtol = case.tolerance(key)
        assert torch.allclose(got[key], value, atol=atol, rtol=rtol), key
