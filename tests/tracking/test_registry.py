"""Registry: register -> challenger, promotion rule -> champion (with reasons), reuse of identical weights,
and `models:/NAME@champion` loading in the server's loader and in Python."""

from __future__ import annotations

import pytest
import torch

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    Criterion,
    compare,
    load_registered_model,
    log_model_to_registry,
    promote_if_better,
)
from tests.tracking.tiny_models import perturbed_copy, use_sqlite_store, write_tiny_models

RULE = [{"metric": "pitch_x_inst", "mode": "max", "min_delta": 0.02}, {"metric": "kid", "mode": "min"}]


def _alias(client, name, alias):
    return str(client.get_model_version_by_alias(name, alias).version)


def _check_version_metadata(client, folder, training_run_id: str, evaluation_run_id: str) -> None:
    """What the registry page shows for version 1: the training run as source, inputs/params, an example,
    descriptions, a self-contained environment (this package as code, public pins), and the evaluation
    metrics on the MLflow 3 logged model."""
    import yaml

    import mlflow

    registered = client.get_model_version("ld", "1")
    assert registered.run_id == training_run_id != evaluation_run_id
    assert "latent diffusion" in registered.description and training_run_id in registered.description
    assert "prompt" in client.get_registered_model("ld").description
    mlflow.artifacts.download_artifacts(artifact_uri="models:/ld/1", dst_path=str(folder))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    assert "prompt" in mlmodel["signature"]["inputs"] and "steps" in mlmodel["signature"]["params"]
    assert (folder / mlmodel["saved_input_example_info"]["artifact_path"]).is_file()
    assert (folder / "code" / "stable_audio_ops" / "serving" / "pyfunc_model.py").is_file()
    assert not list((folder / "code").rglob("__pycache__"))
    requirements = (folder / "requirements.txt").read_text().split()
    assert any(r.startswith("torch==") for r in requirements) and not [r for r in requirements if "+" in r]
    logged = client.get_logged_model(registered.source.removeprefix("models:/"))
    assert logged.source_run_id == training_run_id
    assert {(m.key, m.value, m.run_id) for m in logged.metrics} == {("pitch_x_inst", 0.10, evaluation_run_id),
                                                                     ("kid", 5.0, evaluation_run_id)}


def test_register_promote_and_load_by_alias(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    import mlflow
    from stable_audio_ops.serving.model_loader import load_model

    uri = use_sqlite_store(tmp_path, monkeypatch)
    _, ld_path = write_tiny_models(tmp_path / "m")
    client = MlflowClient()

    with mlflow.start_run(run_name="training") as training:
        pass
    with mlflow.start_run(run_name="evaluation") as evaluation:  # registration + promotion, as the pipeline does
        v1 = log_model_to_registry(ld_path, "ld", tags={"training_run_id": "abc"}, training_run_id=training.info.run_id)
        assert (v1.version, v1.new, v1.aliases) == ("1", True, [CHALLENGER])
        first = promote_if_better("ld", v1.version, {"pitch_x_inst": 0.10, "kid": 5.0, "fd": float("nan")}, RULE)
    assert first["promoted"] and first["reason"] == "no champion yet" and _alias(client, "ld", CHAMPION) == "1"
    _check_version_metadata(client, tmp_path / "download", training.info.run_id, evaluation.info.run_id)

    # identical weights: the existing version comes back, no new version, aliases untouched
    again = log_model_to_registry(ld_path, "ld")
    assert (again.version, again.new) == ("1", False)

    # a retrained model: new version gets challenger, champion stays until it wins
    v2 = log_model_to_registry(perturbed_copy(ld_path, tmp_path / "v2.safetensors"), "ld")
    assert v2.version == "2" and _alias(client, "ld", CHALLENGER) == "2" and _alias(client, "ld", CHAMPION) == "1"
    worse = promote_if_better("ld", "2", {"pitch_x_inst": 0.05, "kid": 1.0}, RULE)
    assert not worse["promoted"] and "pitch_x_inst 0.05 vs champion 0.1" in worse["reason"]
    assert _alias(client, "ld", CHAMPION) == "1"
    tie_then_kid = promote_if_better("ld", "2", {"pitch_x_inst": 0.11, "kid": 4.0}, RULE)
    assert tie_then_kid["promoted"] and "kid 4 vs champion 5" in tie_then_kid["reason"]
    assert _alias(client, "ld", CHAMPION) == "2"
    tags = client.get_model_version("ld", "2").tags
    assert tags["promotion_decision"] == "promoted" and tags["promoted_over"] == "1"
    assert float(tags["eval.kid"]) == 4.0
    assert client.get_model_version("ld", "1").tags["training_run_id"] == "abc"

    # models:/NAME@champion: the server's loader and the Python loader get version 2's weights
    served = load_model("models:/ld@champion", tracking_uri=uri, device="cpu")
    assert served.registry["version"] == "2"
    python = load_registered_model("models:/ld@champion", tracking_uri=uri)
    expected = perturbed_copy(ld_path, tmp_path / "again.safetensors")
    from stable_audio_ops.models.checkpoints import load_ckpt_state_dict

    reference = load_ckpt_state_dict(expected)
    for key, value in python.model.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)
    for key, value in served.model.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)


def test_autoencoders_register_and_load_too(tmp_path, monkeypatch):
    uri = use_sqlite_store(tmp_path, monkeypatch)
    ae_path, _ = write_tiny_models(tmp_path / "m")
    version = log_model_to_registry(ae_path, "ae")
    assert version.model_type == "autoencoder"
    loaded = load_registered_model("models:/ae@challenger", tracking_uri=uri)
    assert loaded.config["model_type"] == "autoencoder" and loaded.facts["version"] == "1"
    assert (loaded.folder / "model_config.json").is_file()


def test_compare_rule_semantics():
    rule = [Criterion.parse(c) for c in RULE]
    assert compare({"pitch_x_inst": 0.5, "kid": 9}, {"pitch_x_inst": 0.4, "kid": 1}, rule)[0] is True
    won, reason = compare({"pitch_x_inst": 0.41, "kid": 1}, {"pitch_x_inst": 0.40, "kid": 1}, rule)
    assert won is False and "no criterion decided" in reason  # both within margin / equal: champion kept
    assert compare({"pitch_x_inst": float("nan"), "kid": 0}, {"pitch_x_inst": 0.1, "kid": 1}, rule)[0] is False
    assert compare({"pitch_x_inst": 0.1, "kid": 1}, {}, rule)[0] is True  # champion never evaluated
    with pytest.raises(ConfigError, match="mode"):
        Criterion.parse({"metric": "kid", "mode": "lower"})

