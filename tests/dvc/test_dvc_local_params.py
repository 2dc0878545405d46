"""conf/local overrides reach DVC: real `dvc repro` in a throw-away copy of the project (data_preparation only).

Before the `parameters` stage, DVC read conf/base as plain YAML, so pointing data_preparation at another folder in
conf/local (what the README recommends) left `dvc repro` skipping the stage on stale data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from pipelines.merged_parameters import merged_parameters
from tests.dvc.test_dvc_repro import DVC, make_project, ran, run


def _readable(project: Path) -> int:
    return json.loads((project / "data" / "08_reporting" / "data_summary.json").read_text())["readable"]


@pytest.mark.slow
def test_a_conf_local_override_reruns_the_stages_that_read_it_and_only_those(tmp_path):
    project = make_project(tmp_path / "project")
    first = run(project, DVC, "repro", "data_preparation")
    assert ran(first) == {"parameters", "data_preparation"}, first[-3000:]
    demo_only = _readable(project)

    again = run(project, DVC, "repro", "data_preparation")
    assert ran(again) == {"parameters"} and "Stage 'data_preparation' didn't change" in again, again[-3000:]

    # a conf/local override of another pipeline's parameters leaves data_preparation alone
    local = project / "conf" / "local"
    (local / "parameters_autoencoder.yml").write_text(yaml.safe_dump(
        {"autoencoder": merged_parameters(project)["autoencoder"] | {"seed": 123}}))
    other = run(project, DVC, "repro", "data_preparation")
    assert ran(other) == {"parameters"}, other[-3000:]

    # the README's recipe: conf/local points data_preparation at one more folder -> the stage re-runs on it
    mine = project / "data" / "01_raw" / "mine"
    mine.mkdir(parents=True)
    tone = (0.3 * np.sin(np.arange(16000) / 3)).astype(np.float32)
    for k in range(2):
        sf.write(mine / f"take{k}.wav", tone * (k + 1) / 2, 16000)
    section = merged_parameters(project)["data_preparation"]
    section["raw_dirs"] = [*section["raw_dirs"], "data/01_raw/mine"]
    (local / "parameters_data_preparation.yml").write_text(yaml.safe_dump({"data_preparation": section}))
    third = run(project, DVC, "repro", "data_preparation")
    assert ran(third) == {"parameters", "data_preparation"}, third[-3000:]
    assert _readable(project) == demo_only + 2
    assert "data/01_raw/mine" in (project / "data" / "00_parameters" / "data_preparation.yml").read_text()
