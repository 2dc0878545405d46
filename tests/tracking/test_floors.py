"""Promotion floors: parsed from the parameters, failed floors named with value and floor, and a version below
its floors registered (challenger) but never promoted, also when there is no champion yet."""

from __future__ import annotations

import math

import pytest

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.tracking.floors import (
    Floor,
    autoencoder_blocker,
    blocked_reason,
    floor_failures,
    parse_floors,
    promotion_blockers,
)
from stable_audio_ops.tracking.registry import CHALLENGER, CHAMPION, log_model_to_registry, promote_if_better
from tests.tracking.tiny_models import perturbed_copy, use_sqlite_store, write_tiny_models

AE_FLOORS = {"pitch_acc_crepe": 0.9, "inst_acc": 0.8, "match_accuracy": 0.5}


def test_floors_parse_minimums_and_maximums():
    floors = parse_floors({**AE_FLOORS, "kid": {"max": 0.05}, "fd": {"min": 0, "max": 10}})
    assert floors[0] == Floor("pitch_acc_crepe", minimum=0.9)
    assert floors[3] == Floor("kid", maximum=0.05) and floors[4] == Floor("fd", 0.0, 10.0)
    assert parse_floors(None) == [] and parse_floors({}) == []
    for bad in ({"kid": {"below": 1}}, {"kid": "high"}, {"kid": True}, {"kid": {}}):
        with pytest.raises(ConfigError, match="kid"):
            parse_floors(bad)
    with pytest.raises(ConfigError, match="mapping"):
        parse_floors([0.9])


def test_each_failed_floor_is_named_with_its_value_and_the_floor():
    floors = parse_floors({**AE_FLOORS, "kid": {"max": 0.05}})
    metrics = {"pitch_acc_crepe": 0.0, "inst_acc": 0.85, "match_accuracy": math.nan, "kid": 0.31}
    assert floor_failures(metrics, floors) == [
        "pitch_acc_crepe 0.00 < floor 0.90",
        "match_accuracy missing (floor 0.50)",  # NaN proves nothing: it fails
        "kid 0.31 > ceiling 0.05",
    ]
    assert floor_failures({"pitch_acc_crepe": 0.9, "inst_acc": 0.8, "match_accuracy": 0.5, "kid": 0.05}, floors) == []
    assert floor_failures({"kid": 0.004}, [Floor("kid", maximum=0.001)]) == ["kid 0.004 > ceiling 0.001"]
    blockers = promotion_blockers(metrics, floors[:1], collapse="autoencoder output does not depend on its input "
                                                                  "(match_accuracy 0.04)")
    assert blocked_reason(blockers) == ("not promoted: pitch_acc_crepe 0.00 < floor 0.90; autoencoder output does "
                                        "not depend on its input (match_accuracy 0.04)")


def test_a_diffusion_model_is_blocked_only_by_the_autoencoder_it_was_trained_on():
    failed = ["pitch_acc_crepe 0.00 < floor 0.90"]
    assert autoencoder_blocker("3", failed, "3") == ("trained on autoencoder v3, which is not promotable "
                                                     "(pitch_acc_crepe 0.00 < floor 0.90)")
    assert autoencoder_blocker("3", failed, "2") is None  # trained on another (verified) version
    assert autoencoder_blocker("3", [], "3") is None and autoencoder_blocker("3", failed, None) is None


def test_a_first_version_below_its_floors_is_registered_without_the_champion_alias(tmp_path, monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    use_sqlite_store(tmp_path, monkeypatch)
    ae_path, _ = write_tiny_models(tmp_path / "m")
    client = MlflowClient()
    rule = [{"metric": "mrstft", "mode": "min"}]
    floors = parse_floors(AE_FLOORS)

    v1 = log_model_to_registry(ae_path, "ae")
    collapsed = {"mrstft": 1.0, "pitch_acc_crepe": 0.0, "inst_acc": 0.9, "match_accuracy": 0.04}
    decision = promote_if_better("ae", v1.version, collapsed, rule, blockers=promotion_blockers(collapsed, floors))
    assert not decision["promoted"] and decision["champion"] is None and decision["previous_champion"] is None
    assert decision["reason"] == ("not promoted: pitch_acc_crepe 0.00 < floor 0.90; "
                                  "match_accuracy 0.04 < floor 0.50")
    assert str(client.get_model_version_by_alias("ae", CHALLENGER).version) == "1"
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("ae", CHAMPION)
    tags = client.get_model_version("ae", "1").tags
    assert tags["promotion_decision"] == "not promoted" and tags["promotion_reason"] == decision["reason"]
    assert float(tags["eval.pitch_acc_crepe"]) == 0.0

    # a retrained version above its floors becomes the first champion; the blocked one never was
    v2 = log_model_to_registry(perturbed_copy(ae_path, tmp_path / "v2.safetensors"), "ae")
    good = {"mrstft": 1.5, "pitch_acc_crepe": 0.95, "inst_acc": 0.9, "match_accuracy": 0.9}
    decision = promote_if_better("ae", v2.version, good, rule, blockers=promotion_blockers(good, floors))
    assert decision["promoted"] and decision["reason"] == "no champion yet" and decision["blockers"] == []
    assert str(client.get_model_version_by_alias("ae", CHAMPION).version) == "2"
