"""load_model_config: JSON errors and top-level validation name the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stable_audio_ops.config.model_config import load_model_config, validate_model_config
from stable_audio_ops.errors import ConfigError, UnknownTypeError
from tests.parity.harness import FIXTURES


def _write(tmp_path: Path, obj, name: str = "model_config.json") -> Path:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _valid() -> dict:
    return {"model_type": "diffusion_cond", "sample_rate": 44100, "sample_size": 65536, "model": {}}


def test_loads_every_fixture_config() -> None:
    for case in sorted(FIXTURES.iterdir()):
        if (case / "model_config.json").exists():
            assert load_model_config(case / "model_config.json")["model_type"]


def test_missing_file_and_bad_json_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gone\.json: model config file not found"):
        load_model_config(tmp_path / "gone.json")
    with pytest.raises(ConfigError, match=r"bad\.json: invalid JSON at line 2, column 1"):
        load_model_config(_write(tmp_path, '{"a": 1,\n}', "bad.json"))
    with pytest.raises(ConfigError, match="expected a JSON object at the top level, got list"):
        load_model_config(_write(tmp_path, [1, 2]))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"model_type": "autoencodr"}, "model_type: unknown value 'autoencodr'; known: autoencoder, "),
        ({"sample_rate": "44100"}, "sample_rate: expected a positive int, got '44100'"),
        ({"sample_rate": 0}, "sample_rate: expected a positive int, got 0"),
        ({"sample_size": None}, "sample_size: missing required key (expected a positive int)"),
        ({"audio_channels": 3}, "audio_channels: expected 1 or 2, got 3"),
        ({"model": []}, "model: expected an object, got []"),
        # unknown top-level keys are errors, like unknown keys inside model (a typo must not fall back to stereo)
        ({"audio_channel": 1}, "audio_channel: unknown key; known keys: model_type, sample_size, sample_rate, "
                               "audio_channels, model, training"),
    ],
)
def test_top_level_errors(tmp_path: Path, edit: dict, message: str) -> None:
    cfg = _valid()
    cfg.update(edit)
    if edit.get("sample_size", 1) is None:
        del cfg["sample_size"]
    with pytest.raises(ConfigError) as info:
        load_model_config(_write(tmp_path, cfg))
    assert str(info.value).startswith(f"{tmp_path / 'model_config.json'}: {message}")


def test_unknown_model_type_is_an_unknown_type_error() -> None:
    with pytest.raises(UnknownTypeError):
        validate_model_config(dict(_valid(), model_type="musicgen"), "x.json")


def test_sample_size_optional_for_autoencoders_and_channels_default() -> None:
    cfg = {"model_type": "autoencoder", "sample_rate": 16000, "model": {}}
    assert validate_model_config(cfg, "ae.json") is cfg
    assert "audio_channels" not in cfg  # validation does not rewrite the user's config
