"""The held-out test split: unseen caption combinations for the demo notes, a seeded file split elsewhere,
and copies that every reader (training, sharding, evaluation) can use without filtering."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stable_audio_ops.data.preparation.demo_notes import (
    clip_id,
    plan_notes,
    resolve_instruments,
    velocity_to_dynamic,
)
from stable_audio_ops.data.preparation.probe import build_manifest
from stable_audio_ops.data.preparation.split import (
    TEST,
    TRAIN,
    demo_split_problems,
    materialize_split,
    plan_split,
    split_by_file,
    split_dataset_config,
    split_demo_notes,
    split_manifest_rows,
)
from stable_audio_ops.errors import DatasetError


def _rows(instruments=None, low=48, high=72, velocities=(40, 80, 120)) -> list[dict]:
    """metadata.jsonl rows as render_demo_notes writes them (no synthesis needed)."""
    plan = plan_notes(resolve_instruments(instruments), low, high, velocities)
    return [{"id": clip_id(i, m, v), "path": f"audio/{clip_id(i, m, v)}.wav", "instrument": i.label, "midi": m,
             "velocity": v, "dynamic": velocity_to_dynamic(v)} for i, m, v in plan]


# --------------------------------------------------------------------------- demo rule


def test_demo_rule_holds_out_unseen_captions_and_keeps_every_part_in_training():
    rows = _rows()
    split = split_demo_notes(rows)
    test = [r for r in rows if split[r["id"]] == TEST]
    train = [r for r in rows if split[r["id"]] == TRAIN]
    caption = lambda r: (r["instrument"], r["midi"], r["dynamic"])  # noqa: E731
    assert not {caption(r) for r in test} & {caption(r) for r in train}
    assert {r["instrument"] for r in train} == {r["instrument"] for r in rows}
    assert {(r["instrument"], r["midi"]) for r in train} == {(r["instrument"], r["midi"]) for r in rows}
    assert {r["velocity"] for r in train} == {40, 80, 120}
    assert len(rows) == 786 and len(test) == 136  # ~1/6: one velocity of every second pitch
    assert demo_split_problems(rows, split) == []
    # the held-out loudness rotates: every velocity is held out somewhere, about equally often
    assert Counter(r["velocity"] for r in test) == {40: 45, 80: 46, 120: 45}


def test_demo_rule_is_the_documented_formula():
    rows = _rows(["flute", "church organ"], 60, 63, (40, 120))
    split = split_demo_notes(rows)
    # instruments sorted: church organ (i=0), flute (i=1); pitches 60..63 -> j = 0..3; j even hold out
    # velocity index (i + j // 2) % 2
    expected_test = {"church_organ-060-040", "church_organ-062-120", "flute-060-120", "flute-062-040"}
    assert {k for k, v in split.items() if v == TEST} == expected_test
    assert {k for k, v in split_demo_notes(rows, every_nth_pitch=1).items() if v == TEST} == {
        "church_organ-060-040", "church_organ-061-120", "church_organ-062-040", "church_organ-063-120",
        "flute-060-120", "flute-061-040", "flute-062-120", "flute-063-040"}


def test_demo_rule_is_deterministic_and_ignores_row_order():
    rows = _rows(["flute", "trumpet", "cello"], 55, 70)
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    assert split_demo_notes(rows) == split_demo_notes(shuffled) == split_demo_notes(rows)


def test_demo_rule_never_empties_a_pitch_and_refuses_what_it_cannot_split():
    one_velocity = _rows(["flute"], 60, 63, (80,))
    assert set(split_demo_notes(one_velocity).values()) == {TRAIN}  # nothing can be held out without losing a pitch
    with pytest.raises(ValueError, match="every_nth_pitch"):
        split_demo_notes(one_velocity, every_nth_pitch=0)
    with pytest.raises(DatasetError, match="lack"):
        split_demo_notes([{"id": "x", "instrument": "flute", "midi": 60}])
    # one pitch, two velocities: the only loud clip is held out, so "loud" never trains -> refused
    with pytest.raises(DatasetError, match="velocities missing from training"):
        split_demo_notes(_rows(["flute"], 60, 60, (40, 120)))


# --------------------------------------------------------------------------- by file


def test_split_by_file_is_seeded_counted_and_independent_of_listing_order():
    paths = [f"dir{i % 3}/clip{i:02d}.wav" for i in range(40)]
    split = split_by_file(paths, 0.15, seed=0)
    assert Counter(split.values()) == {TRAIN: 34, TEST: 6}
    assert split_by_file(list(reversed(paths)), 0.15, seed=0) == split
    assert split_by_file(paths, 0.15, seed=1) != split
    assert Counter(split_by_file(paths[:2], 0.01, seed=0).values()) == {TRAIN: 1, TEST: 1}  # at least one test file
    assert split_by_file(paths[:1], 0.5, seed=0) == {paths[0]: TRAIN}
    assert split_by_file([], 0.5, seed=0) == {}
    with pytest.raises(ValueError, match="test_fraction"):
        split_by_file(paths, 1.0, seed=0)


# --------------------------------------------------------------------------- planning + copies


def _tone(path: Path, hz: float = 440.0, sidecar: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(4000) / 16000
    sf.write(path, (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 16000, subtype="PCM_16")
    if sidecar is not None:
        path.with_suffix(".json").write_text(json.dumps(sidecar))


@pytest.fixture()
def raw(tmp_path: Path) -> dict[str, Path]:
    """A demo-notes-shaped folder (metadata.jsonl + audio/ + sidecars + licence) and a user's own folder."""
    demo = tmp_path / "raw" / "demo_notes"
    rows = _rows(["flute", "church organ"], 60, 61, (40, 120))
    for row in rows:
        _tone(demo / row["path"], 200 + row["midi"], sidecar={"caption": row["id"]})
    (demo / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (demo / "LICENSE_SOUNDFONT.txt").write_text("MIT\n")
    mine = tmp_path / "raw" / "mine"
    for k in range(5):
        _tone(mine / "takes" / f"take{k}.wav", 300 + k, sidecar={"prompt": f"take {k}"} if k % 2 == 0 else None)
    (mine / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    return {"demo_audio": demo / "audio", "mine": mine, "rows": rows}


def test_plan_and_materialize_copy_each_split_with_sidecars_and_metadata(tmp_path, raw):
    roots = [raw["demo_audio"], raw["mine"]]
    manifest = build_manifest(roots, progress=False)
    out = tmp_path / "splits"
    result = materialize_split(plan_split(manifest, roots, test_fraction=0.4, seed=0), out)

    assert result["method"] == "mixed" and [s["method"] for s in result["sources"]] == ["demo_notes", "by_file"]
    assert result["counts"] == {TRAIN: 6 + 3, TEST: 2 + 2}  # broken.wav is unreadable: not split at all
    assert result["files"]["demo_notes/audio/flute-060-120.wav"] == TEST
    assert "mine/broken.wav" not in result["files"]
    for relpath, split in result["files"].items():
        copy = out / split / relpath
        assert copy.is_file() and not (out / ({TRAIN, TEST} - {split}).pop() / relpath).exists()
    # sidecars travel with their audio; the demo metadata is filtered per split, paths relative to the split folder
    assert json.loads((out / TEST / "demo_notes/audio/flute-060-120.json").read_text()) == {"caption": "flute-060-120"}
    test_rows = [json.loads(line) for line in (out / TEST / "demo_notes/metadata.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in test_rows) == ["church_organ-060-040", "flute-060-120"]
    assert all((out / TEST / "demo_notes" / r["path"]).is_file() for r in test_rows)
    assert (out / TRAIN / "demo_notes" / "LICENSE_SOUNDFONT.txt").is_file()
    mine_test = [p for p, s in result["files"].items() if p.startswith("mine/") and s == TEST]
    for relpath in mine_test:
        sidecar = (raw["mine"] / relpath.removeprefix("mine/")).with_suffix(".json")
        assert (out / TEST / relpath).with_suffix(".json").is_file() == sidecar.is_file()
    assert not (out / TRAIN / "mine" / "metadata.jsonl").exists()
    assert "j % 2 == 0" in result["rule"] and "seed 0" in result["rule"]

    # configs and shard rows of one split point into that split only
    train_config = split_dataset_config(result, TRAIN, {"id": "d", "custom_metadata_module": "m"})
    assert [s["path"] for s in train_config["datasets"]] == [str(out / TRAIN / name) for name in ("demo_notes", "mine")]
    assert {s["custom_metadata_module"] for s in train_config["datasets"]} == {"m"}
    assert split_dataset_config(result, TEST, {"id": "d"})["datasets"][0]["id"] == "d_test_0"
    rows = split_manifest_rows(result, TRAIN)
    assert len(rows) == 9 and all(Path(r["path"]).is_file() and f"/{TRAIN}/" in r["path"] for r in rows)


def test_materialize_is_atomic_a_failed_run_leaves_the_previous_split(tmp_path, raw):
    roots = [raw["demo_audio"]]
    manifest = build_manifest(roots, progress=False)
    out = tmp_path / "splits"
    first = materialize_split(plan_split(manifest, roots), out)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))

    plan = plan_split(manifest, roots)
    plan.sources[0].files["audio/vanished.wav"] = TRAIN  # a file deleted between scan and copy
    with pytest.raises(FileNotFoundError):
        materialize_split(plan, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no temp folder left

    # a successful re-run replaces the folder wholesale (nothing stale from an older split survives)
    (out / TRAIN / "stale.wav").write_bytes(b"old")
    assert materialize_split(plan_split(manifest, roots), out) == first
    assert not (out / TRAIN / "stale.wav").exists()


def test_plan_split_methods(tmp_path, raw):
    roots = [raw["mine"]]
    manifest = build_manifest(roots, progress=False)
    with pytest.raises(DatasetError, match="no demo metadata"):
        plan_split(manifest, roots, method="demo_notes")
    with pytest.raises(ValueError, match="split.method"):
        plan_split(manifest, roots, method="random")
    demo = build_manifest([raw["demo_audio"]], progress=False)
    forced = plan_split(demo, [raw["demo_audio"]], method="by_file", test_fraction=0.5)
    assert forced.sources[0].method == "by_file" and Counter(forced.sources[0].files.values())[TEST] == 4
    with pytest.raises(DatasetError, match="no readable audio"):
        plan_split([r for r in manifest if not r["readable"]], roots)
