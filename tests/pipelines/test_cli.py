"""`kedro pipeline create NAME` in this layout: the new pipeline sits beside the project's own and is registered."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KEDRO = Path(sys.executable).parent / "kedro"


def kedro(project: Path, *args: str) -> str:
    env = dict(os.environ, DO_NOT_TRACK="true", KEDRO_DISABLE_TELEMETRY="1", MLFLOW_DISABLE_TELEMETRY="true",
               OMP_NUM_THREADS="1")
    result = subprocess.run([str(KEDRO), *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"kedro {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_created_pipeline_lands_in_pipelines_and_is_registered(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO / name, project / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "credentials*")
    shutil.copytree(REPO / "conf", project / "conf", ignore=ignore)
    shutil.copytree(REPO / "pipelines", project / "pipelines", ignore=ignore)

    kedro(project, "pipeline", "create", "audio_qc")

    assert (project / "pipelines" / "audio_qc" / "pipeline.py").is_file()
    assert not (project / "pipelines" / "pipelines").exists()
    assert (project / "tests" / "pipelines" / "audio_qc" / "test_pipeline.py").is_file()
    assert (project / "conf" / "base" / "parameters_audio_qc.yml").is_file()
    registered = {line[2:].strip() for line in kedro(project, "registry", "list").splitlines() if line.startswith("- ")}
    assert {"audio_qc", "data_preparation", "autoencoder", "latent_diffusion", "evaluation"} <= registered
