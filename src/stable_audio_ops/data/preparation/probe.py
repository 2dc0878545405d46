"""Scan raw audio folders, probe every file, and report what a training run would actually get.

Why: a dataset folder collected by hand always holds a few broken, empty or odd files. Finding them
at data-preparation time (with the reason, in a manifest that DVC can track) is far cheaper than a
training worker crashing on them hours later, or silently training on less audio than planned.
Probing reads the header plus a few frames, and the first ``LOUDNESS_SECONDS`` of each usable file for its
loudness (the data report's loudness histogram), so it stays fast on large folders of long files.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from stable_audio_ops.data.audio_io import is_audio_file, read_audio_window
from stable_audio_ops.data.files import check_audio_file, printable_path, scan_audio_folder
from stable_audio_ops.data.transforms import integrated_loudness
from stable_audio_ops.errors import DatasetError
from stable_audio_ops.utils.io import write_text_atomic

Roots = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]

# Loudness is measured on the start of each file only: enough 400 ms blocks for a stable BS.1770 value
# without decoding hours of audio.
LOUDNESS_SECONDS = 10.0


def _as_root_list(roots: Roots) -> list[Path]:
    if isinstance(roots, (str, os.PathLike)):
        return [Path(roots)]
    return [Path(r) for r in roots]


def _scan_root(root: Path) -> list[Path]:
    """Audio files under one root, found by the datasets' own scanner (so the report lists what training
    reads: linked folders included, hidden files and folders left out), sorted by path."""
    if not root.exists():
        raise DatasetError(f"audio root does not exist: {root}")
    if root.is_file():
        return [root] if is_audio_file(root) else []
    return sorted(Path(path) for path in scan_audio_folder(root))


def _identity(path: Path) -> str:
    """What makes two listed paths one file. ``os.path.realpath`` (unlike ``Path.resolve`` before Python 3.13)
    does not raise on a self-looping link, which must reach the report as a skipped file, not end the scan."""
    return os.path.realpath(path)


def scan_audio_files(roots: Roots) -> list[Path]:
    """All audio files (by extension, case-insensitive) under ``roots``, recursively, sorted, without duplicates."""
    unique: dict[Path, Path] = {}
    for root in _as_root_list(roots):
        for path in _scan_root(root):
            unique.setdefault(_identity(path), path)
    return sorted(unique.values())


def _relpath(path: Path, root: Path) -> str:
    if root.is_file():
        return path.name
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _loudness_lufs(path: Path, sample_rate: int, seconds: float) -> float | None:
    """BS.1770 integrated loudness of the first ``seconds`` of a usable file; None when it has no block above
    the absolute gate (silence, or shorter than 400 ms)."""
    try:
        audio = read_audio_window(path, 0, max(1, int(seconds * sample_rate)))
    except Exception:  # a file whose middle does not decode still gets its probe row
        return None
    loudness = integrated_loudness(audio, sample_rate)
    return round(loudness, 2) if math.isfinite(loudness) else None


def probe_audio_file(path: str | os.PathLike[str], root: str | os.PathLike[str], *,
                     loudness_seconds: float = LOUDNESS_SECONDS) -> dict[str, Any]:
    """Describe one file; never raises for a bad file, it returns ``readable=False`` and a ``reason`` instead.

    Keys: path, relpath, readable, reason (None when readable), duration_s, sample_rate, channels, frames,
    format, subtype, size_bytes, loudness_lufs (of the first ``loudness_seconds``; None for a skipped, silent
    or sub-400 ms file, or when ``loudness_seconds`` is 0). The verdict is :func:`~stable_audio_ops.data.files.check_audio_file`'s, the
    check the training scan makes too (files with 0 frames or 0 bytes: reason "empty"; NaN/Inf in a float
    file: "non-finite samples").
    """
    path = Path(path)
    check = check_audio_file(path)
    info = check.info
    row: dict[str, Any] = {
        "path": str(path),
        "relpath": _relpath(path, Path(root)),
        "readable": check.usable,
        "reason": check.reason,
        "duration_s": None,
        "sample_rate": info.sample_rate if info else None,
        "channels": info.channels if info else None,
        "frames": info.frames if info else None,
        "format": info.format if info else None,
        "subtype": info.subtype if info else None,
        "size_bytes": check.size_bytes,
        "loudness_lufs": None,
    }
    if info is not None and (check.usable or info.frames <= 0):
        row["duration_s"] = info.duration
    if check.usable and info is not None and loudness_seconds > 0:
        row["loudness_lufs"] = _loudness_lufs(path, info.sample_rate, loudness_seconds)
    return row


def build_manifest(roots: Roots, *, progress: bool = True) -> list[dict[str, Any]]:
    """Probe every audio file under ``roots``; one row per file (see ``probe_audio_file``), sorted by path."""
    jobs: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    for root in _as_root_list(roots):
        for path in _scan_root(root):
            key = _identity(path)
            if key not in seen:
                seen.add(key)
                jobs.append((path, root))
    jobs.sort(key=lambda job: str(job[0]))
    return [
        probe_audio_file(path, root)
        for path, root in tqdm(jobs, desc="probe audio", unit="file", disable=not progress)
    ]


def summarize_manifest(manifest: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts a person checks before training: how much usable audio, in which formats, and what was skipped.

    Keys: files, readable, skipped (count), total_seconds, total_hours (readable files only),
    sample_rates / channels / formats (readable files, value -> count; keys are strings so the dict is
    JSON-stable), skipped_files (list of {relpath, path, reason}), skipped_reasons (reason kind -> count).
    Names in skipped_files are :func:`~stable_audio_ops.data.files.printable_path`-escaped: a summary is read
    by people and strict JSON parsers, which both choke on a surrogate-escaped name.
    """
    readable = [row for row in manifest if row.get("readable")]
    skipped = [row for row in manifest if not row.get("readable")]
    total_seconds = float(sum(row.get("duration_s") or 0.0 for row in readable))

    def count(key: str) -> dict[str, int]:
        counts = Counter(row.get(key) for row in readable)
        return {str(k): v for k, v in sorted(counts.items(), key=lambda kv: (str(type(kv[0])), kv[0]))}

    reasons = Counter(str(row.get("reason") or "unknown").split(":", 1)[0] for row in skipped)
    return {
        "files": len(manifest),
        "readable": len(readable),
        "skipped": len(skipped),
        "total_seconds": round(total_seconds, 3),
        "total_hours": total_seconds / 3600.0,
        "sample_rates": count("sample_rate"),
        "channels": count("channels"),
        "formats": count("format"),
        "skipped_files": [
            {"relpath": printable_path(row["relpath"]), "path": printable_path(row["path"]),
             "reason": printable_path(str(row.get("reason")))}
            for row in skipped
        ],
        "skipped_reasons": dict(sorted(reasons.items())),
    }


def write_manifest(manifest: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write one JSON object per line, atomically (temp file + rename), creating parent folders."""
    return write_text_atomic(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in manifest))


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a manifest written by ``write_manifest``."""
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def format_report(summary: dict[str, Any], *, max_skipped: int = 50,
                  figure: tuple[str, str] | None = None) -> str:
    """A short Markdown report of ``summarize_manifest``'s result, for the pipeline's reporting folder.

    ``figure`` is ``(caption, path relative to the report)`` of the histograms picture to embed under the table.
    """

    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{k} ({v})" for k, v in d.items()) or "none"

    lines = [
        "# Raw audio report",
        "",
        "| | |",
        "|---|---|",
        f"| files found | {summary['files']} |",
        f"| readable | {summary['readable']} |",
        f"| skipped | {summary['skipped']} |",
        f"| total duration (readable) | {_fmt_duration(summary['total_seconds'])} "
        f"({summary['total_hours']:.3f} h) |",
        f"| sample rates (Hz) | {counts(summary['sample_rates'])} |",
        f"| channels | {counts(summary['channels'])} |",
        f"| formats | {counts(summary['formats'])} |",
        "",
    ]
    if figure is not None:
        lines += [f"![{figure[0]}]({figure[1]})", ""]
    skipped = summary.get("skipped_files") or []
    if skipped:
        lines += ["## Skipped files", "", "| file | reason |", "|---|---|"]
        for row in skipped[:max_skipped]:
            reason = str(row["reason"]).replace("|", "\\|")
            lines.append(f"| `{printable_path(row['relpath'])}` | {printable_path(reason)} |")
        if len(skipped) > max_skipped:
            lines.append(f"| ... | {len(skipped) - max_skipped} more (see the manifest) |")
        lines.append("")
    else:
        lines += ["No file was skipped.", ""]
    return "\n".join(lines)
