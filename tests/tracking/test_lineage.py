"""Lineage tags: the git commit, and the DVC data hash equal to what DVC itself records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from stable_audio_ops.tracking.lineage import dvc_hash, lineage_tags, state_dict_sha256

BIN = Path(sys.executable).parent
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def sh(cwd: Path, *cmd: str) -> str:
    return subprocess.run(list(cmd), cwd=cwd, env=ENV, check=True, capture_output=True, text=True).stdout


def test_tags_name_the_commit_and_the_dvc_hash_dvc_itself_records(tmp_path, monkeypatch):
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, str(BIN / "dvc"), "init", "-q")
    raw = tmp_path / "data" / "01_raw"
    (raw / "sub").mkdir(parents=True)
    (raw / "a.wav").write_bytes(b"RIFF0000")
    (raw / "sub" / "b.json").write_text('{"caption": "a flute"}')
    (raw / "sub" / "__pycache__").mkdir()
    (raw / "sub" / "__pycache__" / "x.pyc").write_bytes(b"ignored")
    (tmp_path / ".dvcignore").write_text("__pycache__/\n")
    sh(tmp_path, str(BIN / "dvc"), "add", "-q", "data/01_raw")
    recorded = yaml.safe_load((tmp_path / "data" / "01_raw.dvc").read_text())["outs"][0]["md5"]
    sh(tmp_path, "git", "add", "-A")
    sh(tmp_path, "git", "commit", "-q", "-m", "data")

    monkeypatch.setenv("DVC_STAGE", "autoencoder")
    tags = lineage_tags(tmp_path)
    assert tags["dvc_data_hash"] == recorded and recorded.endswith(".dir")
    assert tags["git_commit"] == sh(tmp_path, "git", "rev-parse", "HEAD").strip()
    assert tags["git_dirty"] == "false" and tags["dvc_stage"] == "autoencoder"
    (raw / "a.wav").write_bytes(b"RIFF0001")
    assert dvc_hash("data/01_raw", tmp_path) != recorded


def test_outside_git_and_without_data_the_tags_say_unknown(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert lineage_tags(tmp_path) == {"git_commit": "unknown", "dvc_data_hash": "unknown"}


def test_a_self_looping_link_in_the_data_makes_the_hash_unknown_not_the_run_fail(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)
    raw = tmp_path / "data" / "01_raw"
    raw.mkdir(parents=True)
    (raw / "a.wav").write_bytes(b"RIFF0000")
    (raw / "loop.wav").symlink_to(raw / "loop.wav")  # the probe reports it; DVC's tree builder raises on it
    assert dvc_hash("data/01_raw", tmp_path) is None
    assert lineage_tags(tmp_path)["dvc_data_hash"] == "unknown"


def test_weights_hash_ignores_the_container_prefix():
    weights = {"encoder.w": torch.arange(6.0).reshape(2, 3), "decoder.b": torch.tensor(1.5)}
    wrapped = {f"pretransform.model.{k}": v.clone() for k, v in weights.items()} | {"model.x": torch.ones(2)}
    assert state_dict_sha256(wrapped, prefix="pretransform.model.") == state_dict_sha256(weights)
    changed = dict(weights, **{"decoder.b": torch.tensor(1.25)})
    assert state_dict_sha256(changed) != state_dict_sha256(weights)
