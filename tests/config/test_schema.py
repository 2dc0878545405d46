"""ConfigNode and its helpers: every config mistake names the file, the dotted key path and what was expected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stable_audio_ops.config.schema import ConfigNode, check_known_keys, lookup
from stable_audio_ops.errors import ConfigError, UnknownTypeError
from stable_audio_ops.models.factory import create_model_from_config_path

TINY_DIT = Path(__file__).resolve().parents[1] / "fixtures" / "configs" / "dit_tiny.json"
CONFIG = {"model": {"diffusion": {"type": "dit", "config": {"embed_dim": 64, "depth": None}},
                    "conditioning": {"configs": [{"id": "prompt", "type": "t5"}, {"type": "number"}]}}}


def root() -> ConfigNode:
    return ConfigNode(CONFIG, "model_config.json")


def test_a_missing_key_names_the_file_and_the_dotted_path():
    diffusion = root().child("model").child("diffusion")
    with pytest.raises(ConfigError) as info:
        diffusion.child("config").get("num_heads", "a positive int")
    assert str(info.value) == ("model_config.json: model.diffusion.config.num_heads: "
                               "missing required key (expected a positive int)")
    assert (info.value.source, info.value.key_path) == ("model_config.json", "model.diffusion.config.num_heads")
    with pytest.raises(ConfigError, match=r"^model_config.json: model.pretransform: missing required key "
                                          r"\(expected an object\)$"):
        root().child("model").child("pretransform")


def test_list_elements_carry_their_index_in_the_path():
    configs = root().child("model").child("conditioning").children("configs")
    assert [c.path for c in configs] == ["model.conditioning.configs[0]", "model.conditioning.configs[1]"]
    with pytest.raises(ConfigError, match=r"model.conditioning.configs\[1\].id: missing required key"):
        configs[1].get("id", "a string")
    with pytest.raises(ConfigError, match=r"model.diffusion.type: expected a list, got 'dit'"):
        root().child("model").child("diffusion").children("type")


@pytest.mark.parametrize(
    ("kind", "value", "accepted"),
    [
        ("an int", 3, True), ("an int", True, False), ("an int", 3.0, False),  # JSON true is not 1
        ("a number", 2.5, True), ("a number", "2.5", False), ("a number", False, False),
        ("a positive int", 1, True), ("a positive int", 0, False),
        ("a non-negative number", 0.0, True), ("a non-negative number", -0.1, False),
        ("a list of ints", [2, 4], True), ("a list of ints", [2, "4"], False),
        ("a list of strings", ["a"], True), ("a list of strings", "a", False),
        ("an object", {}, True), ("an object", [], False),
    ],
)
def test_values_are_checked_against_their_kind(kind, value, accepted):
    node = ConfigNode({"key": value}, "train.json", "training")
    if accepted:
        assert node.get("key", kind) == value
    else:
        with pytest.raises(ConfigError) as info:
            node.get("key", kind)
        assert str(info.value) == f"train.json: training.key: expected {kind}, got {value!r}"


def test_null_means_use_the_default_when_there_is_one():
    config = root().child("model").child("diffusion").child("config")
    assert config.get("depth", "a positive int", default=2) == 2  # upstream configs write null for "default"
    assert config.get("num_heads", "a positive int", default=4) == 4
    with pytest.raises(ConfigError, match="model.diffusion.config.depth: expected a positive int, got None"):
        config.get("depth", "a positive int")  # without a default, null is a wrong value, not a silent one
    assert config.child("options", {"a": 1}).get("a", "an int") == 1  # defaults are nodes with paths too


def test_unknown_names_list_the_known_ones():
    conditioner = root().child("model").child("conditioning").children("configs")[0]
    with pytest.raises(UnknownTypeError) as info:
        conditioner.choice("type", ["number", "list"])
    assert str(info.value) == ("model_config.json: model.conditioning.configs[0].type: "
                               "unknown value 't5'; known: number, list")
    registry = {"t5": object, "clap_text": object, "number": object}
    assert lookup(registry, "t5", "conditioner", conditioner) is object
    with pytest.raises(UnknownTypeError) as info:
        lookup(registry, "t6", "conditioner", conditioner)
    assert str(info.value) == ("model_config.json: model.conditioning.configs[0].type: "
                               "unknown conditioner 't6'; known: clap_text, number, t5")


def test_check_known_keys_rejects_a_misspelt_key_instead_of_a_later_type_error():
    config = root().child("model").child("diffusion").child("config")
    check_known_keys(config, ("embed_dim", "depth", "num_heads"))
    with pytest.raises(ConfigError) as info:
        check_known_keys(config, ("embed_dim", "num_heads"))
    assert str(info.value) == ("model_config.json: model.diffusion.config.depth: "
                               "unknown key; known keys: embed_dim, num_heads")


def test_a_typo_in_a_real_model_config_is_reported_with_its_file_and_path(tmp_path):
    config = json.loads(TINY_DIT.read_text())
    config["model"]["diffusion"]["config"]["embed_dimm"] = config["model"]["diffusion"]["config"].pop("embed_dim")
    path = tmp_path / "my_model.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError) as info:
        create_model_from_config_path(path)
    assert str(info.value).startswith(f"{path}: model.diffusion.config.embed_dimm: unknown key; known keys: ")
