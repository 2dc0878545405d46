"""The one atomic writer: all or nothing, no temp files left behind, normal permissions."""

from __future__ import annotations

import json
import os
import stat

import pytest

from stable_audio_ops.utils.io import (
    atomic_path,
    atomic_write,
    replace_folder,
    write_json_atomic,
    write_text_atomic,
)


def test_writes_create_parents_and_replace_the_old_file(tmp_path):
    path = tmp_path / "a" / "b" / "x.json"
    write_json_atomic(path, {"v": 1})
    write_json_atomic(path, {"v": 2}, indent=2, sort_keys=True)
    assert json.loads(path.read_text()) == {"v": 2} and path.read_text().startswith("{\n")
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json"]


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path, interrupt):
    path = tmp_path / "x.txt"
    write_text_atomic(path, "old")

    def boom(f):
        f.write(b"half")
        raise interrupt("stop")

    with pytest.raises(interrupt):
        atomic_write(path, boom)
    with pytest.raises(interrupt), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise interrupt("stop")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_temp_lives_beside_the_target_and_the_result_has_umask_permissions(tmp_path):
    path = tmp_path / "x.bin"
    with atomic_path(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".x.bin.") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"data")
    umask = os.umask(0)
    os.umask(umask)
    assert path.read_bytes() == b"data"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_replace_folder_swaps_a_finished_folder_in_and_leaves_no_old_copy(tmp_path):
    out = tmp_path / "notes"
    for version in ("old", "new"):
        build = tmp_path / f".notes.build-{version}"
        (build / "sub").mkdir(parents=True)
        (build / "sub" / "clip.txt").write_text(version)
        assert replace_folder(build, out) == out and not build.exists()
        assert (out / "sub" / "clip.txt").read_text() == version  # a reader sees one whole version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]
