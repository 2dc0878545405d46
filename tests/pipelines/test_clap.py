"""The clap pipeline by Kedro's SequentialRunner over a DataCatalog: a random RoBERTa written with save_pretrained,
the demo clap config pointed at it, a few training steps (its own process, through the train launcher) on rendered
demo notes whose captions come from their sidecars, and the unwrapped model, which the CLAP-score judge loads."""

from __future__ import annotations

import json

import pytest
import yaml

from pipelines.clap.nodes import build_clap_config
from pipelines.clap.pipeline import create_pipeline
from pipelines.datasets import RecordedFolderDataset, TrainingRunDataset, UnwrappedModelDataset
from pipelines.pipeline_registry import register_pipelines
from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.evaluation.clap_score import judge_clap, load_clap_judge
from stable_audio_ops.evaluation.judge import load_dataset_clips
from stable_audio_ops.models.checkpoints import read_embedded_model_config
from tests.pipelines.conftest import REPO, run_pipeline
from tests.pipelines.test_fine_tune import prepared_data

TEMPLATE = json.loads((REPO / "conf/base/model_configs/clap_demo.json").read_text())


def clap_params() -> dict:
    params = yaml.safe_load((REPO / "conf/base/parameters_clap.yml").read_text())["clap"]
    params["text_encoder"].update(hidden_size=32, num_layers=1, intermediate_size=64)
    params["train"].update(max_steps=3, batch_size=4, checkpoint_every=3, threads=1)
    return params


def test_clap_pipeline_trains_on_the_captioned_train_split_and_unwraps_a_judge(tmp_path) -> None:
    assert "clap" in register_pipelines() and "clap" not in {n.name for n in register_pipelines()["__default__"].nodes}
    train_config, test_config = prepared_data(tmp_path)
    out_dir = tmp_path / "out"
    out = run_pipeline(create_pipeline(), {
        "params:clap": clap_params(), "clap_model_template": TEMPLATE, "prepared_dataset_config": train_config},
        datasets={"clap_text_encoder": RecordedFolderDataset(str(out_dir / "text.json"), str(out_dir / "text")),
                  "clap_training_result": TrainingRunDataset(str(out_dir / "training.json"), str(out_dir / "run")),
                  "clap_model": UnwrappedModelDataset(str(out_dir / "model.json"), str(out_dir / "clap.safetensors"))})

    # the text encoder is a local save_pretrained folder, and the config trains from it
    assert (out_dir / "text" / "config.json").is_file() and (out_dir / "text" / "tokenizer.json").is_file()
    assert out["clap_model_config"]["model"]["text"]["model"]["config"]["name"] == str(out_dir / "text")
    assert out["clap_training_result"]["max_steps"] == 3

    # the unwrapped clap embeds its config and is a working judge of the test split's real notes and captions
    model = out["clap_model"]
    assert model["path"] == str(out_dir / "clap.safetensors") and model["model_type"] == "clap"
    assert read_embedded_model_config(model["path"]) == out["clap_model_config"]
    clips = load_dataset_clips(validate_dataset_config(test_config, "test"))
    scores = judge_clap(load_clap_judge(model["path"]), clips)
    assert 0.0 <= scores["clap_r1"] <= 1.0 and -1.0 <= scores["clap_score"] <= 1.0


def test_text_context_longer_than_the_encoder_is_an_error_naming_both() -> None:
    with pytest.raises(ConfigError, match=r"clap_demo\.json.*model\.text\.context_length.*max_length"):
        build_clap_config(TEMPLATE, {"path": "x", "max_length": 8})
