"""Nodes read their settings from conf/base/parameters_*.yml only: a missing key fails at once and names the
parameter path and the file to add it to, instead of running on a default hidden in code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.data_preparation.nodes import render_demo_dataset, split_dataset
from pipelines.evaluation.nodes import load_evaluation_clips
from pipelines.parameters import MissingParameterError, Parameters
from stable_audio_ops.errors import ConfigError

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"


def test_a_missing_parameter_names_its_path_and_file() -> None:
    params = Parameters({"split": {"seed": 0}}, "evaluation")
    assert params["split.seed"] == 0 and "split.seed" in params and "split.holdout_fraction" not in params
    with pytest.raises(MissingParameterError) as raised:
        params.sub("split")["holdout_fraction"]
    error = raised.value
    assert isinstance(error, KeyError) and isinstance(error, ConfigError)
    assert str(error) == ("conf/base/parameters_evaluation.yml: evaluation.split.holdout_fraction: missing parameter "
                          "'evaluation.split.holdout_fraction' (nodes have no defaults: set it in the YAML)")


def test_nodes_fail_on_a_missing_key_before_doing_any_work(tmp_path: Path) -> None:
    prep = yaml.safe_load((CONF / "parameters_data_preparation.yml").read_text())["data_preparation"]
    del prep["split"]["seed"]
    with pytest.raises(KeyError, match=r"data_preparation\.split\.seed"):
        split_dataset([], prep)
    del prep["demo"]["enabled"]
    with pytest.raises(KeyError, match=r"data_preparation\.demo\.enabled"):
        render_demo_dataset(prep)

    evaluation = yaml.safe_load((CONF / "parameters_evaluation.yml").read_text())["evaluation"]
    del evaluation["split"]["max_reference_clips"]
    with pytest.raises(KeyError, match=r"evaluation\.split\.max_reference_clips"):
        load_evaluation_clips({"datasets": []}, evaluation)


def test_render_demo_dataset_does_nothing_when_disabled(tmp_path: Path) -> None:
    prep = yaml.safe_load((CONF / "parameters_data_preparation.yml").read_text())["data_preparation"]
    prep["demo"].update(enabled=False)
    assert render_demo_dataset(prep)(tmp_path / "notes") == {"enabled": False}
    assert not (tmp_path / "notes").exists()


def test_an_output_dir_left_in_the_parameters_says_the_folder_is_the_catalog_s(tmp_path: Path) -> None:
    """An older conf/local override still naming split.output_dir must not be silently ignored."""
    prep = yaml.safe_load((CONF / "parameters_data_preparation.yml").read_text())["data_preparation"]
    prep["split"]["output_dir"] = str(tmp_path / "my_splits")
    with pytest.raises(ConfigError, match=r"data_preparation\.split\.output_dir.*dataset_split\.folder"):
        split_dataset([], prep)
    assert not (tmp_path / "my_splits").exists()


def test_a_conf_local_override_keeps_the_keys_it_does_not_name(tmp_path: Path) -> None:
    """The README's own-folder override names raw_dirs only; the split, demo and shard settings must survive."""
    import shutil

    from pipelines.merged_parameters import merged_parameters

    shutil.copytree(Path("conf/base"), tmp_path / "conf" / "base")
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "conf" / "local" / "parameters_data_preparation.yml").write_text(
        "data_preparation:\n  raw_dirs: [/my/audio]\n  split: {seed: 7}\n")
    base = yaml.safe_load(Path("conf/base/parameters_data_preparation.yml").read_text())["data_preparation"]
    merged = merged_parameters(tmp_path, env="local")["data_preparation"]
    assert merged["raw_dirs"] == ["/my/audio"]
    assert merged["split"]["seed"] == 7
    assert {k: v for k, v in merged["split"].items() if k != "seed"} == {
        k: v for k, v in base["split"].items() if k != "seed"}
    assert set(merged) == set(base)
