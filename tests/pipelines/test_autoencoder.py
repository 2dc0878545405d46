"""The autoencoder pipeline by Kedro's SequentialRunner over a DataCatalog, and its unwrap node on upstream's
parity checkpoint: what a user gets is a model-only file that loads strictly and says where it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pipelines.autoencoder.nodes import unwrap_autoencoder
from stable_audio_ops.models.checkpoints import (
    load_ckpt_state_dict,
    load_state_dict_checked,
    read_embedded_model_config,
)
from stable_audio_ops.models.factory import create_model_from_config
from tests.parity.harness import load_case
from tests.pipelines.conftest import TINY_AE


@pytest.mark.slow
def test_autoencoder_pipeline_trains_and_unwraps_a_model_that_loads(autoencoder_run) -> None:
    result, model = autoencoder_run["autoencoder_training_result"], autoencoder_run["autoencoder_model"]
    root = autoencoder_run["root"]
    assert Path(result["checkpoint_path"]) == root / "autoencoder" / "checkpoints" / "last.ckpt"
    assert result["max_steps"] == 6 and result["mlflow_run_id"] is None  # no MLflow run: nothing logged
    assert autoencoder_run["autoencoder_metrics"] == {}

    # the unwrapped file is the configured path, embeds the config that trained it and loads strictly
    assert Path(model["path"]) == root / "autoencoder.safetensors"
    assert model["trained_from"] == result["checkpoint_path"] and model["model_type"] == "autoencoder"
    config = read_embedded_model_config(model["path"])
    assert config == json.loads(TINY_AE.read_text())
    load_state_dict_checked(create_model_from_config(config), load_ckpt_state_dict(model["path"]), strict=True)


def test_unwrap_autoencoder_node_exports_upstreams_ema_weights(tmp_path: Path) -> None:
    """The node on upstream's wrapped checkpoint writes exactly upstream's export to the configured path."""
    case = load_case("unwrap_autoencoder")
    training_result = {"checkpoint_path": str(case.root / "wrapped.ckpt"), "mlflow_run_id": None}
    info, metrics = unwrap_autoencoder(training_result, case.model_config,
                                       {"unwrapped_path": str(tmp_path / "ae.safetensors")})
    assert info["path"] == str(tmp_path / "ae.safetensors") and info["size_bytes"] > 0 and metrics == {}
    got, expected = load_file(info["path"]), case.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        atol, rtol = case.tolerance(key)
        assert torch.allclose(got[key], value, atol=atol, rtol=rtol), key
