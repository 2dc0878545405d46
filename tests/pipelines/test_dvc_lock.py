"""The dvc.lock staleness check against a lock real DVC wrote: code/config changes are reported, absent data is not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipelines.dvc_lock import main, stale_entries

DVC = str(Path(sys.executable).parent / "dvc")
STAGE = {"cmd": "python -c \"import shutil; shutil.copy('data/raw.txt', 'data/out.txt')\"",
         "deps": ["code", "data/raw.txt"], "params": [{"params.yml": ["stage"]}], "outs": ["data/out.txt"]}


def _dvc(cwd: Path, *args: str) -> None:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    subprocess.run([DVC, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=120)


def test_lock_written_by_dvc_is_fresh_then_code_and_param_changes_are_stale(tmp_path, capsys):
    (tmp_path / "code" / "__pycache__").mkdir(parents=True)
    (tmp_path / "code" / "stage.py").write_text("X = 1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw.txt").write_text("raw")
    (tmp_path / "params.yml").write_text(yaml.safe_dump({"stage": {"steps": 2}}))
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"copy": STAGE}}))
    (tmp_path / ".dvcignore").write_text("__pycache__/\n")
    _dvc(tmp_path, "init", "--no-scm", "-q")
    _dvc(tmp_path, "repro", "-q")
    assert stale_entries(tmp_path) == []

    # a clean clone: no data at all (and byte-code DVC ignores) is not staleness
    shutil.rmtree(tmp_path / "data")
    (tmp_path / "code" / "__pycache__" / "stage.cpython-311.pyc").write_bytes(b"\0")
    assert stale_entries(tmp_path) == []
    assert main(["--root", str(tmp_path), "--strict"]) == 0

    (tmp_path / "code" / "stage.py").write_text("X = 2\n")
    (tmp_path / "params.yml").write_text(yaml.safe_dump({"stage": {"steps": 3}}))
    assert [(s.stage, s.what) for s in stale_entries(tmp_path)] == [("copy", "code"), ("copy", "params params.yml:stage")]
    assert main(["--root", str(tmp_path)]) == 0  # reports only
    assert main(["--root", str(tmp_path), "--strict"]) == 1
    assert "stale: copy: code: md5 " in capsys.readouterr().out

    spec = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    spec["stages"]["copy"]["deps"].append("more.py")
    spec["stages"]["new"] = {"cmd": "true"}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec))
    assert {(s.stage, s.what) for s in stale_entries(tmp_path)} >= {("copy", "more.py"), ("new", "stage")}


def test_an_optional_stage_never_run_is_listed_but_not_stale_unless_a_locked_stage_needs_it(tmp_path, capsys):
    stages = {"prepare": {"cmd": "p", "deps": ["data/raw"], "outs": ["data/mid"]},
              "train": {"cmd": "t", "deps": ["data/mid/split.json"], "outs": [{"data/model": {"cache": False}}]},
              "optional": {"cmd": "o", "deps": ["data/mid", "data/model"], "outs": ["data/optional"]}}
    lock = {"schema": "2.0", "stages": {name: {"cmd": stages[name]["cmd"],
                                               "deps": [{"path": dep} for dep in stages[name]["deps"]]}
                                        for name in ("prepare", "train")}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))

    # `make demo` never ran the optional stage: reported as not run, --strict still passes
    assert [(s.stage, s.blocking) for s in stale_entries(tmp_path)] == [("optional", False)]
    assert main(["--root", str(tmp_path), "--strict"]) == 0
    assert "not run: optional: stage: in dvc.yaml, not run yet" in capsys.readouterr().out

    # a stage missing from the lock that a locked stage reads (train reads prepare's output) is stale
    del lock["stages"]["prepare"]
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert {(s.stage, s.blocking) for s in stale_entries(tmp_path)} == {("optional", False), ("prepare", True)}
    assert main(["--root", str(tmp_path), "--strict"]) == 1
