"""Train/test split of the prepared audio, copied into ``<output_dir>/{train,test}/<source>/`` folders.

Why a split at all: the evaluation judges captions, and a caption the models were trained on says
nothing about generalisation. For the demo notes the test set is therefore made of caption
*combinations* (instrument, pitch, loudness) that training never saw, while every instrument, every
pitch of each instrument and every loudness still occur in training: a model that learned the parts
of a caption can then be asked for an unseen combination of them (see :func:`split_demo_notes`).
A user's own folder has no such labels, so it is split by file with a seed (:func:`split_by_file`).

Why copies: the training configs read folders (``audio_dir``) and sharding reads files, so a split
that lives only in a list would need every reader to filter. Copying each split into its own folder
(sidecar ``.json`` files and a filtered ``metadata.jsonl`` included) lets every existing reader train
on ``train/`` and judge on ``test/`` unchanged. The folder is built in a temp sibling and renamed into
place (:func:`materialize_split`), so a failed run never leaves a half-written split behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stable_audio_ops.errors import DatasetError
from stable_audio_ops.utils.io import replace_folder

TRAIN = "train"
TEST = "test"
SPLITS = (TRAIN, TEST)
METHODS = ("auto", "demo_notes", "by_file")
METADATA_FILE = "metadata.jsonl"
DEMO_FIELDS = ("id", "path", "instrument", "midi", "velocity")
LABEL_FIELDS = ("id", "instrument", "midi", "velocity")

DEMO_RULE = (
    "demo notes: for each instrument (index i in sorted instrument names) and each of its pitches "
    "(index j in sorted order) with j % {n} == 0, the clip(s) of one loudness are held out for test: "
    "velocity index (i + j // {n}) % n_velocities of that pitch's sorted velocities; every instrument, "
    "pitch and velocity still occurs in training, and no test caption (instrument, pitch, loudness) does"
)
BY_FILE_RULE = "by file: sorted paths, seeded shuffle (seed {seed}), {fraction:.0%} of the files (at least 1) for test"


# --------------------------------------------------------------------------- split rules


def _loudness(row: Mapping[str, Any]) -> Any:
    """The caption's loudness word when the row has one, else the velocity (two velocities may share a word)."""
    return row.get("dynamic", row["velocity"])


def _held_out_ids(pitch_rows: Sequence[Mapping[str, Any]], velocity_index: int) -> set[str]:
    """Ids of one pitch's clips with the loudness of the chosen velocity; empty when that would empty the pitch."""
    velocities = sorted({int(r["velocity"]) for r in pitch_rows})
    if len(velocities) < 2:
        return set()
    chosen = velocities[velocity_index % len(velocities)]
    loudness = next(_loudness(r) for r in pitch_rows if int(r["velocity"]) == chosen)
    held = {str(r["id"]) for r in pitch_rows if _loudness(r) == loudness}
    return held if len(held) < len(pitch_rows) else set()


def split_demo_notes(metadata_rows: Iterable[Mapping[str, Any]], every_nth_pitch: int = 2) -> dict[str, str]:
    """Clip id -> ``"train"`` | ``"test"`` for the demo notes (rows of ``metadata.jsonl``).

    Rule (deterministic, no seed): instruments are numbered ``i`` in sorted name order; each
    instrument's pitches are numbered ``j`` in sorted order. For every pitch with
    ``j % every_nth_pitch == 0`` exactly one velocity is held out for test: the one at index
    ``(i + j // every_nth_pitch) % n_velocities`` of that pitch's sorted velocities (rows sharing its
    loudness word go with it, so the test caption is never a training caption). Rotating the index over
    pitches and instruments spreads the held-out loudness, so every velocity keeps training clips, and a
    pitch is never held out whole, so every (instrument, pitch) keeps training clips. With the defaults
    (every second pitch, three velocities) about one clip in six is held out. The result is checked
    (:func:`demo_split_problems`); a data set where the rule cannot keep those promises raises.
    """
    if int(every_nth_pitch) < 1:
        raise ValueError(f"every_nth_pitch must be >= 1, got {every_nth_pitch}")
    rows = list(metadata_rows)
    missing = sorted({key for row in rows for key in LABEL_FIELDS if key not in row})
    if missing:
        raise DatasetError(f"demo split: metadata rows lack {missing}; split by file instead")
    by_instrument: dict[str, dict[int, list[Mapping[str, Any]]]] = {}
    for row in rows:
        by_instrument.setdefault(str(row["instrument"]), {}).setdefault(int(row["midi"]), []).append(row)
    split = {str(row["id"]): TRAIN for row in rows}
    n = int(every_nth_pitch)
    for i, instrument in enumerate(sorted(by_instrument)):
        pitches = by_instrument[instrument]
        for j, midi in enumerate(sorted(pitches)):
            if j % n == 0:
                for clip in _held_out_ids(pitches[midi], i + j // n):
                    split[clip] = TEST
    problems = demo_split_problems(rows, split)
    if problems:
        raise DatasetError("demo split: the rule cannot hold out unseen captions here: " + "; ".join(problems)
                           + " (use split.method: by_file or another every_nth_pitch)")
    return split


def _caption_key(row: Mapping[str, Any]) -> tuple[str, int, str]:
    return str(row["instrument"]), int(row["midi"]), str(_loudness(row))


def demo_split_problems(metadata_rows: Iterable[Mapping[str, Any]], split: Mapping[str, str]) -> list[str]:
    """What a demo split breaks of its promises (empty = none): unseen test captions, full training coverage."""
    rows = list(metadata_rows)
    train = [r for r in rows if split.get(str(r["id"])) == TRAIN]
    test = [r for r in rows if split.get(str(r["id"])) == TEST]
    problems: list[str] = []
    leaked = sorted({_caption_key(r) for r in test} & {_caption_key(r) for r in train})
    if leaked:
        problems.append(f"test captions also in training: {leaked[:5]}")
    for what, key in (("instruments", lambda r: str(r["instrument"])),
                      ("(instrument, pitch) pairs", lambda r: (str(r["instrument"]), int(r["midi"]))),
                      ("velocities", lambda r: int(r["velocity"]))):
        absent = sorted({key(r) for r in rows} - {key(r) for r in train})
        if absent:
            problems.append(f"{what} missing from training: {absent[:5]}")
    return problems


def split_by_file(relpaths: Iterable[str], test_fraction: float, seed: int) -> dict[str, str]:
    """Relative path -> ``"train"`` | ``"test"``: a seeded shuffle of the *sorted* paths, so the split does
    not depend on listing order. ``round(test_fraction * n)`` files go to test, at least 1 (and at most
    ``n - 1``) once there are two files; a single file trains."""
    if not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    paths = sorted(set(relpaths))
    n = len(paths)
    take = 0 if n < 2 else min(max(int(round(float(test_fraction) * n)), 1), n - 1)
    order = np.random.default_rng(int(seed)).permutation(n)
    test = {paths[k] for k in order[:take]}
    return {p: TEST if p in test else TRAIN for p in paths}


# --------------------------------------------------------------------------- planning


@dataclass
class SplitSource:
    """One raw folder's files, each assigned a split; copied to ``<out>/<split>/<name>/<relpath>``.

    ``root`` is the folder the ``relpaths`` are relative to (for the demo notes: the folder holding
    ``metadata.jsonl``, so the copies keep its ``audio/<id>.wav`` layout). ``metadata`` holds that
    file's rows (readable clips only) when there is one.
    """

    name: str
    root: Path
    method: str
    files: dict[str, str]
    metadata: list[dict[str, Any]] | None = None


@dataclass
class SplitPlan:
    """Every source's assignment plus the settings that produced it (written into the split manifest)."""

    sources: list[SplitSource]
    settings: dict[str, Any] = field(default_factory=dict)


def find_demo_metadata(folder: str | os.PathLike[str]) -> tuple[Path, list[dict[str, Any]]] | None:
    """``(root, rows)`` of a demo-notes ``metadata.jsonl`` in ``folder`` or its parent (the demo renders its
    audio into ``<root>/audio``), when every row carries id, path, instrument, midi and velocity; else None."""
    folder = Path(folder)
    for root in (folder, folder.parent):
        index = root / METADATA_FILE
        if not index.is_file():
            continue
        with index.open(encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        if rows and all(all(key in row for key in DEMO_FIELDS) for row in rows):
            return root, rows
    return None


def _rows_by_root(manifest: Sequence[Mapping[str, Any]], roots: Sequence[Path]) -> list[list[Path]]:
    """Readable files of the manifest, grouped by the first root (in ``roots`` order) that holds them."""
    groups: list[list[Path]] = [[] for _ in roots]
    resolved = [r.resolve() for r in roots]
    for row in manifest:
        if not row.get("readable"):
            continue
        path = Path(row["path"]).resolve()
        for index, root in enumerate(resolved):
            if path == root or root in path.parents:
                groups[index].append(path)
                break
    return groups


def _unique_name(base: str, taken: set[str]) -> str:
    base = base or "data"
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _plan_source(raw_root: Path, files: list[Path], method: str, test_fraction: float, seed: int,
                 every_nth_pitch: int) -> SplitSource:
    """Assign one raw folder's readable files: the demo rule where demo metadata covers them, else by file.
    The source is named after its root folder (the caller makes names unique)."""
    demo = find_demo_metadata(raw_root) if method in ("auto", "demo_notes") else None
    if method == "demo_notes" and demo is None:
        raise DatasetError(f"split.method demo_notes: no demo metadata.jsonl (with instrument/midi/velocity) "
                           f"in {raw_root} or its parent")
    root = demo[0].resolve() if demo else (raw_root.resolve() if raw_root.is_dir() else raw_root.resolve().parent)
    relpaths = [p.relative_to(root).as_posix() for p in files]
    if demo is None:
        return SplitSource(root.name, root, "by_file", split_by_file(relpaths, test_fraction, seed))
    present = set(relpaths)
    rows = [row for row in demo[1] if Path(row["path"]).as_posix() in present]
    by_id = split_demo_notes(rows, every_nth_pitch)
    assigned = {Path(row["path"]).as_posix(): by_id[str(row["id"])] for row in rows}
    rest = sorted(present - set(assigned))  # files the metadata does not describe
    assigned.update(split_by_file(rest, test_fraction, seed))
    return SplitSource(root.name, root, "demo_notes", assigned, metadata=rows)


def plan_split(manifest: Sequence[Mapping[str, Any]], roots: Iterable[str | os.PathLike[str]], *,
               method: str = "auto", test_fraction: float = 0.15, seed: int = 0,
               every_nth_pitch: int = 2) -> SplitPlan:
    """Assign every readable file of a probe manifest (:func:`~stable_audio_ops.data.preparation.probe.build_manifest`)
    to train or test, one :class:`SplitSource` per raw folder that holds readable files.

    ``method``: ``auto`` (the demo rule where a folder is the demo notes, by file elsewhere),
    ``demo_notes`` (demo rule, error when a folder has no demo metadata) or ``by_file``.
    """
    if method not in METHODS:
        raise ValueError(f"split.method must be one of {', '.join(METHODS)}, got {method!r}")
    root_list = [Path(r) for r in roots]
    groups = _rows_by_root(manifest, root_list)
    if not any(groups):
        raise DatasetError(f"data_preparation: no readable audio file under {[str(r) for r in root_list]}; "
                           "see data/08_reporting/data_report.md for what was skipped and why")
    sources = [_plan_source(root, files, method, test_fraction, seed, every_nth_pitch)
               for root, files in zip(root_list, groups, strict=True) if files]
    taken: set[str] = set()
    for source in sources:
        source.name = _unique_name(source.name, taken)
    settings = {"requested_method": method, "test_fraction": float(test_fraction), "seed": int(seed),
                "every_nth_pitch": int(every_nth_pitch)}
    return SplitPlan(sources, settings)


# --------------------------------------------------------------------------- materializing


def _copy_with_sidecar(src: Path, dst: Path) -> None:
    """Copy an audio file and, when present, the ``<stem>.json`` sidecar next to it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    sidecar = src.with_suffix(".json")
    if sidecar.is_file():
        shutil.copy2(sidecar, dst.with_suffix(".json"))


def _write_metadata(folder: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    with open(folder / METADATA_FILE, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def _copy_source(source: SplitSource, tmp: Path) -> dict[str, int]:
    """Copy one source's files into ``tmp/<split>/<name>``; returns the count per split."""
    counts = dict.fromkeys(SPLITS, 0)
    for relpath, split in sorted(source.files.items()):
        _copy_with_sidecar(source.root / relpath, tmp / split / source.name / relpath)
        counts[split] += 1
    for split in SPLITS:
        folder = tmp / split / source.name
        if not counts[split]:
            continue
        if source.metadata is not None:
            rows = (r for r in source.metadata if source.files.get(Path(r["path"]).as_posix()) == split)
            _write_metadata(folder, rows)
        for notice in sorted(source.root.glob("LICENSE*")):  # e.g. the soundfont's licence travels with its clips
            shutil.copy2(notice, folder / notice.name)
    return counts


def describe_rule(settings: Mapping[str, Any], methods: Iterable[str]) -> str:
    """The holdout rule in words, for the split manifest and the evaluation report."""
    used = sorted(set(methods))
    texts = {"demo_notes": DEMO_RULE.format(n=settings.get("every_nth_pitch", 2)),
             "by_file": BY_FILE_RULE.format(seed=settings.get("seed", 0), fraction=settings.get("test_fraction", 0))}
    return "; ".join(texts[m] for m in used)


def materialize_split(plan: SplitPlan, output_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Copy each source's files into ``<output_dir>/<split>/<source name>/<relpath>`` and return the split
    manifest.

    Sidecars (``<stem>.json``) travel with their audio; a source with demo metadata gets a
    ``metadata.jsonl`` per split holding its rows (paths stay relative to the split's source folder, so
    ``<output_dir>/test/<name>`` reads like a demo-notes folder). Everything is written into a temp
    sibling first and renamed onto ``output_dir`` at the end, so a failure leaves the previous split (or
    nothing) in place. Manifest keys: method, requested_method, test_fraction, seed, every_nth_pitch,
    rule, output_dir, counts ({train, test}), sources (name, root, method, counts) and files
    (``<name>/<relpath>`` -> split).
    """
    out = Path(output_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the data set is meant to be shared
    try:
        sources = []
        for source in plan.sources:
            counts = _copy_source(source, tmp)
            sources.append({"name": source.name, "root": str(source.root), "method": source.method, "counts": counts})
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    methods = sorted({s.method for s in plan.sources})
    return {
        "method": methods[0] if len(methods) == 1 else "mixed",
        **plan.settings,
        "rule": describe_rule(plan.settings, methods),
        "output_dir": str(output_dir),
        "counts": {split: sum(s["counts"][split] for s in sources) for split in SPLITS},
        "sources": sources,
        "files": {f"{s.name}/{rel}": split for s in plan.sources for rel, split in sorted(s.files.items())},
    }


# --------------------------------------------------------------------------- readers of a split


def split_folders(split_manifest: Mapping[str, Any], split: str) -> list[str]:
    """``<output_dir>/<split>/<name>`` of every source with files in ``split`` (paths as configured)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    base = Path(split_manifest["output_dir"])
    return [str(base / split / s["name"]) for s in split_manifest["sources"] if s["counts"][split]]


def split_dataset_config(split_manifest: Mapping[str, Any], split: str,
                         options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An ``audio_dir`` dataset config (stable-audio-tools schema) over one split's folders.

    ``options``: ``id`` (source ids are ``<id>_<k>``, ``<id>_test_<k>`` for test), ``random_crop``,
    ``drop_last`` and ``custom_metadata_module`` (kept on every source, so sidecar captions still load).
    """
    options = options or {}
    folders = split_folders(split_manifest, split)
    if not folders:
        raise DatasetError(f"the {split} split is empty ({split_manifest.get('counts')}); add audio or change "
                           "data_preparation.split")
    prefix = f"{options.get('id', 'raw')}{'_test' if split == TEST else ''}"
    sources = []
    for index, folder in enumerate(folders):
        source: dict[str, Any] = {"id": f"{prefix}_{index}", "path": folder}
        if options.get("custom_metadata_module"):
            source["custom_metadata_module"] = options["custom_metadata_module"]
        sources.append(source)
    return {
        "dataset_type": "audio_dir",
        "datasets": sources,
        "random_crop": bool(options.get("random_crop", True)),
        "drop_last": bool(options.get("drop_last", True)),
    }


def split_manifest_rows(split_manifest: Mapping[str, Any], split: str) -> list[dict[str, Any]]:
    """Probe-manifest-like rows (``path``, ``relpath``, ``readable``) of one split's copied files, e.g. for
    :func:`~stable_audio_ops.data.preparation.shards.write_webdataset_shards`."""
    base = Path(split_manifest["output_dir"]) / split
    return [{"path": str(base / relpath), "relpath": relpath, "readable": True}
            for relpath, where in sorted(split_manifest["files"].items()) if where == split]


def format_split(split_manifest: Mapping[str, Any]) -> str:
    """One Markdown paragraph: how many clips each split holds and the holdout rule."""
    counts = split_manifest["counts"]
    return (f"Test split: {counts[TEST]} clips held out by data_preparation (training used {counts[TRAIN]} other "
            f"clips and never saw these). Holdout rule: {split_manifest['rule']}.")
