"""A throw-away copy of the Kedro project (conf + pipelines) so pipeline tests never touch the repo's data/ or mlflow/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TINY_AE = REPO / "tests" / "fixtures" / "configs" / "autoencoder_tiny.json"


def _edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def kedro_project(tmp_path: Path) -> Path:
    """Project copy with a tiny demo set (2 instruments x 2 notes x 2 velocities) and a tiny autoencoder."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "conf", project / "conf", ignore=shutil.ignore_patterns("credentials*"))
    (project / "conf" / "local").mkdir(exist_ok=True)
    os.symlink(REPO / "pipelines", project / "pipelines")
    shutil.copy(TINY_AE, project / "conf" / "base" / "model_configs" / "autoencoder_demo.json")

    def tiny_data(params: dict) -> None:
        demo = params["data_preparation"]["demo"]
        demo.update(instruments=["flute", "church organ"], midi_low=60, midi_high=61, velocities=[40, 120])
        # a second raw folder the user brought, holding one broken file
        params["data_preparation"]["raw_dirs"].append("data/01_raw/extra")

    def tiny_training(params: dict) -> None:
        params["autoencoder"]["train"].update(max_steps=6, batch_size=2, checkpoint_every=3, threads=1)

    _edit_yaml(project / "conf" / "base" / "parameters_data_preparation.yml", tiny_data)
    _edit_yaml(project / "conf" / "base" / "parameters_autoencoder.yml", tiny_training)
    return project


def run_kedro(project: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, DO_NOT_TRACK="true", KEDRO_DISABLE_TELEMETRY="1", MLFLOW_DISABLE_TELEMETRY="true")
    env.pop("MLFLOW_TRACKING_URI", None)
    kedro = Path(sys.executable).parent / "kedro"
    result = subprocess.run(
        [str(kedro), "run", *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"kedro run {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result
