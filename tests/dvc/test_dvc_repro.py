"""`dvc repro evaluation` (what `make demo` runs) of the main Kedro chain in a throw-away git repo with tiny configs.

Checks what a user relies on: a full run from a fresh clone runs the main chain and none of the optional stages
(lm, diffusion_uncond); a second `dvc repro evaluation` does nothing; changing
an autoencoder parameter re-runs autoencoder and everything downstream but not data_preparation;
`dvc params diff` / `dvc metrics diff` report the change; each Kedro run is an MLflow run tagged with
the git commit and the DVC data hash; the evaluation registered both models and, as 2-step models are far
below the promotion floors, set no `champion` and said why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DVC = str(BIN / "dvc")
FIXTURES = REPO / "tests" / "fixtures" / "configs"
STAGES = ("data_preparation", "autoencoder", "latent_diffusion", "evaluation")
SNAPSHOT = "parameters"  # always_changed: writes the merged Kedro parameters the stages depend on
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "credentials*")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(PATH=f"{BIN}:{os.environ['PATH']}", DO_NOT_TRACK="true", KEDRO_DISABLE_TELEMETRY="1",
               MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               OMP_NUM_THREADS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    return env


def run(cwd: Path, *cmd: str, timeout: int = 400) -> str:
    result = subprocess.run(list(cmd), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-6000:]}\n"
                             f"{result.stderr[-6000:]}")
    return result.stdout + result.stderr


def _edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def make_project(root: Path) -> Path:
    """The project's DVC/Kedro files (library included, as dvc.yaml depends on it) with tiny configs."""
    root.mkdir()
    for name in ("pyproject.toml", ".telemetry", ".gitignore", ".dvcignore", "dvc.yaml"):
        shutil.copy(REPO / name, root / name)
    for name in ("conf", "pipelines", ".dvc"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", "credentials*", "cache", "tmp", "remote", "config.local"))
    shutil.copytree(REPO / "src" / "stable_audio_ops", root / "src" / "stable_audio_ops", ignore=IGNORE)
    (root / "conf" / "local").mkdir(exist_ok=True)
    models = root / "conf" / "base" / "model_configs"
    shutil.copy(FIXTURES / "autoencoder_tiny.json", models / "autoencoder_demo.json")
    shutil.copy(FIXTURES / "dit_tiny.json", models / "dit_demo.json")
    base = root / "conf" / "base"

    def data(p):
        # 16 clips; every pitch holds out one velocity -> 8 test clips, enough for a judge reference + captions
        p["data_preparation"]["demo"].update(instruments=["flute", "church organ"], midi_low=60, midi_high=63,
                                             velocities=[40, 120])
        p["data_preparation"]["split"]["every_nth_pitch"] = 1

    def autoencoder(p):
        p["autoencoder"]["train"].update(max_steps=2, batch_size=2, checkpoint_every=2, threads=1)

    def diffusion(p):
        p["latent_diffusion"]["pre_encode"].update(sample_size=4096, batch_size=4)
        p["latent_diffusion"]["train"].update(max_steps=2, batch_size=2, checkpoint_every=2, threads=1)

    def evaluation(p):
        e = p["evaluation"]
        e["split"].update(holdout_fraction=0.5, max_reference_clips=None)
        e["autoencoder"].update(max_clips=4, batch_size=4)
        e["generation"].update(num_captions=4, steps=2, batch_size=4)
        e["judges"].update(embedder="mel_stats", pitch_judges=["acf"], kid_subsets=5, kid_subset_size=10)
        e["plots"]["spectrogram_examples"] = 2

    for name, edit in (("data_preparation", data), ("autoencoder", autoencoder), ("latent_diffusion", diffusion),
                       ("evaluation", evaluation)):
        _edit_yaml(base / f"parameters_{name}.yml", edit)
    run(root, "git", "init", "-q", "-b", "main")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-q", "-m", "tiny project")
    return root


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([a-z_]+)'", output))


@pytest.mark.slow
def test_dvc_repro_full_then_noop_then_downstream_only(tmp_path):
    from mlflow.tracking import MlflowClient

    from stable_audio_ops.tracking.lineage import dvc_hash

    project = make_project(tmp_path / "project")
    timings = {}

    started = time.perf_counter()
    first = run(project, DVC, "repro", "evaluation")
    timings["full"] = time.perf_counter() - started
    assert ran(first) == {SNAPSHOT, *STAGES}, first[-3000:]  # not lm / diffusion_uncond: optional stages
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) == {SNAPSHOT, *STAGES}
    metrics = json.loads((project / "data" / "08_reporting" / "metrics.json").read_text())
    assert {"autoencoder", "generation", "promoted", "split"} <= set(metrics)
    assert metrics["split"] == {"train": 8, "test": 8}
    assert {p.name for p in (project / "data" / "08_reporting" / "plots").iterdir()} == {
        "spectrograms.png", "metric_bars.png", "loss_curves.png", "comparison.png"}

    # MLflow: one run per stage, tagged with the commit and the DVC hash of the raw data; champions set
    uri = f"sqlite:///{project / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    head = run(project, "git", "rev-parse", "HEAD").strip()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    top = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert {r.data.tags.get("dvc_stage") for r in top} == set(STAGES)
    assert all(r.data.tags["git_commit"] == head for r in top)
    assert {r.data.tags["dvc_data_hash"] for r in top} == {dvc_hash("data/01_raw", project)}
    evaluation_run = next(r for r in top if r.data.tags.get("dvc_stage") == "evaluation")
    logged = {a.path for a in client.list_artifacts(evaluation_run.info.run_id, "plots")}
    assert logged == {"plots/spectrograms.png", "plots/metric_bars.png", "plots/loss_curves.png",
                      "plots/comparison.png"}
    assert "evaluation.generation.model.pitch_x_inst" in evaluation_run.data.metrics
    # registered, but below the floors (the tiny judges run no CREPE, so pitch_acc_crepe is missing): no champion
    from mlflow.exceptions import MlflowException

    promotion = json.loads((project / "data" / "08_reporting" / "promotion.json").read_text())
    for kind, name in (("autoencoder", "stable-audio-ops-autoencoder"),
                       ("latent_diffusion", "stable-audio-ops-latent-diffusion")):
        assert str(client.get_model_version_by_alias(name, "challenger").version) == "1"
        with pytest.raises(MlflowException):
            client.get_model_version_by_alias(name, "champion")
        assert promotion[kind]["reason"].startswith("not promoted: pitch_acc_crepe missing (floor ")
    report = (project / "data" / "08_reporting" / "evaluation_report.md").read_text()
    assert "Test split: 8 clips held out" in report and promotion["autoencoder"]["reason"] in report
    ld = client.get_model_version_by_alias("stable-audio-ops-latent-diffusion", "challenger")
    assert ld.tags["autoencoder_version"] == "1" and ld.tags["autoencoder_lineage"].startswith("verified")

    # nothing changed: nothing runs but the parameters snapshot (always, it is how conf/local reaches DVC)
    second = run(project, DVC, "repro", "evaluation")
    assert ran(second) == {SNAPSHOT}, second
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-q", "-m", "dvc.lock after the first run")

    # an autoencoder parameter changes: autoencoder and everything downstream re-run, upstream does not
    _edit_yaml(project / "conf" / "base" / "parameters_autoencoder.yml",
               lambda p: p["autoencoder"]["train"].update(max_steps=3))
    status = run(project, DVC, "status", "--with-deps", "evaluation")
    # status compares each stage with its own recorded deps: downstream stages show up only once autoencoder re-ran
    assert "autoencoder" in status and "data_preparation" not in status, status
    assert "latent_diffusion" not in status and "evaluation" not in status, status
    params_diff = run(project, DVC, "params", "diff")
    assert re.search(r"autoencoder\.train\.max_steps\s+2\s+3", params_diff), params_diff
    started = time.perf_counter()
    third = run(project, DVC, "repro", "evaluation")
    timings["after_param_change"] = time.perf_counter() - started
    assert ran(third) == {SNAPSHOT, "autoencoder", "latent_diffusion", "evaluation"}, third[-3000:]
    assert "Stage 'data_preparation' didn't change, skipping" in third
    metrics_diff = run(project, DVC, "metrics", "diff", "--all")
    assert "data/08_reporting/metrics.json" in metrics_diff and "autoencoder.mrstft" in metrics_diff, metrics_diff
    # the retrained models are new registry versions with `challenger`
    assert str(client.get_model_version_by_alias("stable-audio-ops-autoencoder", "challenger").version) == "2"
    print(f"dvc repro timings (s): {timings}")
