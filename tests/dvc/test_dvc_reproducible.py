"""Reproducible reruns under DVC: a no-op change re-runs pre-encoding, which writes the same bytes, so `dvc repro`
skips the stage that reads the latents (before, an unseeded phase flip and a `load_time` in every sidecar made
every rerun look new downstream)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.dvc.test_dvc_repro import DVC, ran, run
from tests.inference.test_pre_encode import AE_CONFIG, dataset_config, make_ae_checkpoint, make_audio_folder


@pytest.mark.slow
def test_noop_change_reruns_pre_encoding_but_nothing_downstream(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_audio_folder(repo / "audio", n=6)
    make_ae_checkpoint(repo / "ae.safetensors")
    (repo / "ae.json").write_text(json.dumps(AE_CONFIG))
    config = dataset_config(Path("audio"))
    (repo / "dataset.json").write_text(json.dumps(config))
    pre_encode = [sys.executable, "-m", "stable_audio_ops.cli.pre_encode", "--model-config", "ae.json",
                  "--ckpt-path", "ae.safetensors", "--dataset-config", "dataset.json", "--output-path", "latents",
                  "--sample-size", "1024", "--batch-size", "4", "--num-workers", "0", "--seed", "0", "--no-progress"]
    stages = {
        "pre_encode": {"cmd": " ".join(pre_encode), "deps": ["audio", "ae.safetensors", "dataset.json"],
                       "outs": ["latents"]},
        "summarize": {"cmd": "cat latents/0/*.json > sidecars.jsonl", "deps": ["latents"], "outs": ["sidecars.jsonl"]},
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    run(repo, DVC, "init", "-q", "--no-scm")
    assert ran(run(repo, DVC, "repro")) == {"pre_encode", "summarize"}
    latents = {p: p.read_bytes() for p in sorted((repo / "latents").rglob("*")) if p.is_file()}
    assert len(latents) == 2 * 6 + 1

    # the same config, written differently: DVC sees a changed dependency and re-encodes
    (repo / "dataset.json").write_text(json.dumps(config, indent=2))
    again = run(repo, DVC, "repro")
    assert ran(again) == {"pre_encode"}, again
    assert "Stage 'summarize' didn't change, skipping" in again
    assert {p: p.read_bytes() for p in sorted((repo / "latents").rglob("*")) if p.is_file()} == latents
