"""The end-of-demo summary points at a model alias that exists, and says why when nothing was promoted."""

from __future__ import annotations

import json
from pathlib import Path

from stable_audio_ops.cli.demo_summary import main


def decision(promoted: bool, model: str) -> dict:
    return {"model": model, "version": "1", "promoted": promoted, "champion": "1" if promoted else None,
            "reason": "promoted" if promoted else "not promoted: inst_acc 0.10 < floor 0.50"}


def run(tmp_path: Path, capsys, promotion: dict) -> str:
    path = tmp_path / "promotion.json"
    path.write_text(json.dumps(promotion))
    assert main(["--promotion", str(path)]) == 0
    return capsys.readouterr().out


def test_champion_is_served_when_promoted(tmp_path, capsys):
    out = run(tmp_path, capsys, {"autoencoder": decision(True, "ae"), "latent_diffusion": decision(True, "dit")})
    assert "--model models:/dit@champion" in out and "warning" not in out


def test_unpromoted_generator_is_served_as_challenger_with_the_reason(tmp_path, capsys):
    out = run(tmp_path, capsys, {"autoencoder": decision(False, "ae"), "latent_diffusion": decision(False, "dit")})
    assert "@champion" not in out
    assert "--model models:/dit@challenger" in out
    assert "inst_acc 0.10 < floor 0.50" in out and "warning" in out


def test_missing_or_broken_report_is_a_clear_error(tmp_path, capsys):
    assert main(["--promotion", str(tmp_path / "nope.json")]) == 1
    assert "nope.json not found" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert main(["--promotion", str(tmp_path / "bad.json")]) == 1
    assert "not valid JSON" in capsys.readouterr().err
