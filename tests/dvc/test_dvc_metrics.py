"""DVC metrics and plots as users compare runs: `dvc metrics diff HEAD` and `dvc exp show` read them from git.

A real git + DVC repository in tmp with the project's .gitignore, whose one stage declares metrics and plots
exactly as the project's `evaluation` stage does (copied from dvc.yaml); what goes into metrics.json is checked
on the library's builder.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from stable_audio_ops.evaluation.report import build_metrics
from tests.dvc.test_dvc_repro import DVC, REPO, run

METRICS = "data/08_reporting/metrics.json"

STAGE_SCRIPT = """
import json, pathlib
mrstft = float(pathlib.Path("params.yaml").read_text().split(":")[1])
out = pathlib.Path("data/08_reporting")
(out / "plots").mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text(json.dumps({"autoencoder": {"mrstft": mrstft}, "promoted": {"autoencoder": 0}}))
(out / "plots" / "curve.json").write_text(json.dumps([{"step": 0, "loss": mrstft}]))
"""

def _evaluation_stage_declarations() -> dict:
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluation"]
    return {"metrics": stage["metrics"], "plots": stage["plots"]}


def test_metrics_json_holds_headline_numbers_not_timings() -> None:
    judged = {"n": 6.0, "pitch_acc_crepe": 0.9, "kid": 2.0, "inst_acc": 0.5, "pitch_x_inst": 0.45,
              "ms_per_clip_crepe": 40.0, "pitch_median_cents_crepe": 3.0, "kid_std": 0.1}
    decision = {"promoted": True, "reason": "no champion yet", "model": "m", "version": "1", "champion": "1"}
    metrics, flat, _ = build_metrics({"mrstft": 1.2, "mrstft_median": 1.1, "seconds": 30.0, **judged},
                                     {"model": {**judged, "generation_seconds": 9.0}, "noise": judged},
                                     {"autoencoder": decision, "latent_diffusion": decision},
                                     {"counts": {"train": 10, "test": 2}, "rule": "r"})
    assert metrics["autoencoder"] == {"mrstft": 1.2, "pitch_acc_crepe": 0.9, "kid": 2.0, "inst_acc": 0.5,
                                      "pitch_x_inst": 0.45}
    assert metrics["generation"]["model"] == {"n": 6.0, "pitch_acc_crepe": 0.9, "kid": 2.0, "inst_acc": 0.5,
                                              "pitch_x_inst": 0.45}
    assert set(metrics["generation"]) == {"model", "noise"}
    assert metrics["promoted"] == {"autoencoder": 1, "latent_diffusion": 1} and metrics["split"]["test"] == 2
    # timings and diagnostics still reach MLflow
    assert flat["generation.model.generation_seconds"]["value"] == 9.0 and "autoencoder.seconds" in flat
    assert "generation.model.ms_per_clip_crepe" in flat


def test_project_declares_metrics_and_plots_uncached_and_git_tracks_them() -> None:
    declared = _evaluation_stage_declarations()
    assert declared["metrics"] == [{METRICS: {"cache": False}}]
    assert all(next(iter(entry.values())) == {"cache": False} for entry in declared["plots"])


@pytest.mark.slow
def test_metrics_diff_against_head_and_exp_show_read_committed_metrics(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / ".gitignore", repo / ".gitignore")  # the project's: must not hide metrics from git
    (repo / "stage.py").write_text(STAGE_SCRIPT)
    (repo / "params.yaml").write_text("mrstft: 2.0\n")
    stage = {"cmd": f"{sys.executable} stage.py", "deps": ["stage.py"], "params": ["mrstft"],
             **_evaluation_stage_declarations()}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluation": stage}}))
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, DVC, "init", "-q")  # analytics off: DVC_NO_ANALYTICS in run()'s environment
    run(repo, DVC, "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "first run")
    tracked = run(repo, "git", "ls-files")
    assert METRICS in tracked and "data/08_reporting/plots/curve.json" in tracked, tracked

    (repo / "params.yaml").write_text("mrstft: 1.5\n")
    run(repo, DVC, "repro")
    diff = json.loads(run(repo, DVC, "metrics", "diff", "HEAD", "--json"))
    assert diff[METRICS]["autoencoder.mrstft"] == {"old": 2.0, "new": 1.5, "diff": -0.5}
    shown = run(repo, DVC, "exp", "show", "--csv", "--no-pager")
    header, *rows = (line.split(",") for line in shown.splitlines())
    commit = next(row for row in rows if row[header.index("rev")] == "main")  # read from the commit, not the cache
    assert commit[header.index("autoencoder.mrstft")] == "2.0" and "!" not in commit, shown
