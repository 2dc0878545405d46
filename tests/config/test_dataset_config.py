"""Dataset config validation: one frozen object with upstream's defaults, and errors that name the file and the
key path."""

from __future__ import annotations

import json

import pytest

from stable_audio_ops.config.dataset_config import (
    AudioDirConfig,
    FolderSource,
    PreEncodedConfig,
    S3Retry,
    ShardSource,
    WdsConfig,
    dataset_config_to_dict,
    load_dataset_config,
    validate_dataset_config,
)
from stable_audio_ops.errors import ConfigError, UnknownTypeError


def test_defaults_follow_upstream():
    cfg = validate_dataset_config({"dataset_type": "audio_dir", "datasets": [{"id": "a", "path": "/x"}]})
    assert cfg.random_crop is True and cfg.drop_last is True
    assert cfg.datasets[0].custom_metadata_module is None
    pre = validate_dataset_config({"dataset_type": "pre_encoded", "datasets": [{"id": "a", "path": "/x"}]})
    assert pre.random_crop is False and pre.latent_extension == "npy"
    wds = validate_dataset_config({"dataset_type": "s3", "datasets": [{"id": "a", "s3_path": "s3://b/p"}]})
    assert wds.epoch_steps == 2000 and wds.random_crop is True


@pytest.mark.parametrize(
    ("cfg", "where"),
    [
        ({"dataset_type": "audio_dir", "datasets": [{"id": "a", "path": "/x"}], "radnom_crop": False}, "radnom_crop"),
        ({"dataset_type": "audio_dir", "datasets": [{"id": "a", "path": "/x", "custom_metadata": "m.py"}]},
         r"datasets\[0\]\.custom_metadata"),
        ({"dataset_type": "s3", "datasets": [{"id": "a", "s3_path": "s3://b/p", "endpoint": "http://x"}]},
         r"datasets\[0\]\.endpoint"),
    ],
)
def test_unknown_keys_are_errors_naming_file_and_key_path(cfg, where):
    with pytest.raises(ConfigError, match=rf"^dataset\.json: {where}: unknown key; known keys: "):
        validate_dataset_config(cfg, "dataset.json")


def test_keys_upstream_reads_but_this_package_ignores_are_a_warning_naming_file_and_key(caplog):
    cfg = {
        "dataset_type": "pre_encoded",
        # as upstream's docs/datasets.md writes it (upstream itself reads it only at the top level)
        "datasets": [{"id": "a", "path": "/x", "latent_crop_length": 512, "weight": 2.0}],
        "strip_silence": True,  # 0.0.20 audio_dir option
        "epoch_steps": 100,  # a wds option left in a config switched to pre_encoded
    }
    with caplog.at_level("WARNING", logger="stable_audio_ops.config.schema"):
        out = validate_dataset_config(cfg, "dataset.json")
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(" (")[0] for m in messages] == [
        "dataset.json: strip_silence: ignored", "dataset.json: epoch_steps: ignored",
        "dataset.json: datasets[0].latent_crop_length: ignored", "dataset.json: datasets[0].weight: ignored"]
    assert "top level" in messages[2]
    as_json = dataset_config_to_dict(out)
    assert "strip_silence" not in as_json and "latent_crop_length" not in as_json["datasets"][0]
    assert out.latent_crop_length is None  # not taken from the source entry


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"dataset_type": "audio_dir", "datasets": [{"id": "a"}]},
         "dataset.json: datasets[0].path: missing required key (expected a string)"),
        ({"datasets": []}, "dataset.json: dataset_type: missing required key (expected a string)"),
        ({"dataset_type": "audio_dir", "datasets": [{"id": "a", "path": "/x"}, {"path": "/y"}]},
         "dataset.json: datasets[1].id: missing required key (expected a string)"),
        ({"dataset_type": "audio_dir", "datasets": []}, "dataset.json: datasets: needs at least one entry"),
        ({"dataset_type": "audio_dir", "datasets": [{"id": "a", "path": "/x"}], "random_crop": "yes"},
         "dataset.json: random_crop: expected a bool, got 'yes'"),
        ({"dataset_type": "wds", "datasets": [{"id": "a"}]}, "dataset.json: datasets[0]: missing required key"),
        ({"dataset_type": "audio_dir", "datasets": [{"id": "a", "path": "/x", "custom_metadata_module": 3}]},
         "dataset.json: datasets[0].custom_metadata_module: expected a string, got 3"),
    ],
)
def test_errors_name_file_and_key(cfg, message):
    with pytest.raises(ConfigError) as info:
        validate_dataset_config(cfg, "dataset.json")
    assert str(info.value).startswith(message)


def test_unknown_dataset_type_lists_known():
    with pytest.raises(UnknownTypeError, match="known: audio_dir, pre_encoded, wds, s3"):
        validate_dataset_config({"dataset_type": "hdf5", "datasets": []}, "d.json")


def test_load_dataset_config_file_errors(tmp_path):
    good = tmp_path / "ds.json"
    good.write_text(json.dumps({"dataset_type": "audio_dir", "datasets": [{"id": "a", "path": "/x"}]}))
    assert load_dataset_config(good).datasets[0].path == "/x"
    bad = tmp_path / "bad.json"
    bad.write_text('{"dataset_type": "audio_dir",\n "datasets": [,]}')
    with pytest.raises(ConfigError, match=r"bad\.json: invalid JSON at line 2"):
        load_dataset_config(bad)
    with pytest.raises(ConfigError, match=r"missing\.json: dataset config file not found"):
        load_dataset_config(tmp_path / "missing.json")
    top = tmp_path / "list.json"
    top.write_text("[]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        load_dataset_config(top)


def test_validated_config_is_a_frozen_typed_object_whose_json_form_validates_back_to_it():
    cfg = {"dataset_type": "s3", "epoch_steps": 10, "silence_threshold": [0.02, 1], "s3_retry": {"max_attempts": 2},
           "datasets": [{"id": "a", "s3_path": "s3://b/p", "profile": "p"}, {"id": "b", "path": "/shards"}]}
    wds = validate_dataset_config(cfg, "ds.json")
    assert isinstance(wds, WdsConfig) and wds.dataset_type == "s3" and wds.source == "ds.json"
    assert wds.datasets == (ShardSource("a", s3_path="s3://b/p", profile="p", key_path="datasets[0]"),
                            ShardSource("b", path="/shards", key_path="datasets[1]"))
    assert wds.silence_threshold == (0.02, 1) and wds.s3_retry == S3Retry(max_attempts=2)
    with pytest.raises(AttributeError):
        wds.epoch_steps = 5  # frozen: what was validated is what every builder reads
    for config in ({"dataset_type": "audio_dir", "min_length_sec": 1.5,
                    "datasets": [{"id": "a", "path": "/x", "custom_metadata_module": "m.py"}]},
                   {"dataset_type": "pre_encoded", "latent_crop_length": 64, "datasets": [{"id": "a", "path": "/x"}]},
                   cfg):
        validated = validate_dataset_config(config, "ds.json")
        as_json = json.loads(json.dumps(dataset_config_to_dict(validated)))
        assert validate_dataset_config(as_json, "ds.json") == validated
    audio = validate_dataset_config({"dataset_type": "audio_dir", "datasets": [{"id": "a", "path": "/x"}]}, "ds.json")
    assert audio == AudioDirConfig((FolderSource("a", "/x", key_path="datasets[0]"),), source="ds.json")
    assert isinstance(validate_dataset_config({"dataset_type": "pre_encoded", "datasets": [{"id": "a", "path": "/x"}]}),
                      PreEncodedConfig)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"latent_crop_length": 8}, "dataset.json: latent_crop_length: latent_crop_length only applies with "
                                    "pre_encoded: true"),
        ({"volume_norm_param": [-16]}, "dataset.json: volume_norm_param: expected [target LUFS, gain range dB]"),
        ({"s3_retry": {"max_atempts": 3}}, "dataset.json: s3_retry.max_atempts: unknown key"),
        ({"s3_retry": {"base_delay": -1}}, "dataset.json: s3_retry.base_delay: expected a non-negative number"),
    ],
)
def test_shard_options_are_checked_when_the_config_is_read(cfg, message):
    """Checks the WebDataset builder used to make late (or not at all) now fail when the file is read."""
    with pytest.raises(ConfigError) as info:
        validate_dataset_config({"dataset_type": "wds", "datasets": [{"id": "a", "path": "/s"}], **cfg},
                                "dataset.json")
    assert str(info.value).startswith(message)
