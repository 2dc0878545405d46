"""The raw-audio probe must find every usable file and name every unusable one with a reason."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from stable_audio_ops.data.preparation.probe import (
    build_manifest,
    format_report,
    probe_audio_file,
    read_manifest,
    scan_audio_files,
    summarize_manifest,
    write_manifest,
)
from stable_audio_ops.errors import DatasetError


def _tone(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1)


@pytest.fixture()
def raw_dir(tmp_path):
    root = tmp_path / "raw"
    (root / "sub").mkdir(parents=True)
    (root / ".cache").mkdir()
    sf.write(root / "good.wav", _tone(1.0, 16000), 16000, subtype="PCM_16")
    sf.write(root / "sub" / "stereo.FLAC", _tone(2.0, 44100, channels=2), 44100)
    flac = (root / "sub" / "stereo.FLAC").read_bytes()
    (root / "cut.flac").write_bytes(flac[: len(flac) // 3])  # an interrupted copy: valid header and start
    (root / "corrupt.wav").write_bytes(os.urandom(4000))
    sf.write(root / "empty.wav", np.zeros((0, 1), np.float32), 16000)  # header only, 0 frames
    (root / "zero.mp3").write_bytes(b"")  # 0 bytes
    sf.write(root / ".hidden.wav", _tone(1.0, 16000), 16000)
    sf.write(root / ".cache" / "inside_hidden_dir.wav", _tone(1.0, 16000), 16000)
    (root / "notes.txt").write_text("not audio")
    (root / "good.json").write_text("{}")
    return root


def test_scan_finds_audio_recursively_and_skips_hidden_and_non_audio(raw_dir):
    files = scan_audio_files(raw_dir)
    rel = [p.relative_to(raw_dir).as_posix() for p in files]
    assert rel == ["corrupt.wav", "cut.flac", "empty.wav", "good.wav", "sub/stereo.FLAC", "zero.mp3"]
    # Overlapping roots do not list a file twice.
    assert scan_audio_files([raw_dir, raw_dir / "sub"]) == files


def test_scan_of_missing_root_names_it(tmp_path):
    with pytest.raises(DatasetError, match="does-not-exist"):
        scan_audio_files(tmp_path / "does-not-exist")


def test_probe_good_file(raw_dir):
    row = probe_audio_file(raw_dir / "sub" / "stereo.FLAC", raw_dir)
    assert row["readable"] is True and row["reason"] is None
    assert row["relpath"] == "sub/stereo.FLAC"
    assert (row["sample_rate"], row["channels"], row["frames"], row["format"]) == (44100, 2, 88200, "FLAC")
    assert row["duration_s"] == pytest.approx(2.0)
    assert row["size_bytes"] == (raw_dir / "sub" / "stereo.FLAC").stat().st_size


def test_manifest_and_summary_count_usable_audio_and_explain_the_rest(raw_dir):
    manifest = build_manifest(raw_dir, progress=False)
    by_name = {row["relpath"]: row for row in manifest}
    assert list(by_name) == [
        "corrupt.wav",
        "cut.flac",
        "empty.wav",
        "good.wav",
        "sub/stereo.FLAC",
        "zero.mp3",
    ]
    assert by_name["empty.wav"]["reason"] == "empty"
    assert by_name["zero.mp3"]["reason"] == "empty"
    assert by_name["corrupt.wav"]["reason"].startswith("cannot open")
    assert by_name["cut.flac"]["reason"].startswith("cannot decode")

    summary = summarize_manifest(manifest)
    assert (summary["files"], summary["readable"], summary["skipped"]) == (6, 2, 4)
    assert summary["total_hours"] == pytest.approx(3.0 / 3600)  # 1 s + 2 s, unreadable files do not count
    assert summary["sample_rates"] == {"16000": 1, "44100": 1}
    assert summary["channels"] == {"1": 1, "2": 1}
    assert {s["relpath"]: s["reason"] for s in summary["skipped_files"]}["empty.wav"] == "empty"
    assert summary["skipped_reasons"] == {"cannot decode": 1, "cannot open": 1, "empty": 2}
    json.dumps(summary)  # the summary goes to a JSON metrics file

    report = format_report(summary)
    assert report.startswith("# Raw audio report")
    for name in ("corrupt.wav", "cut.flac", "empty.wav", "zero.mp3"):
        assert f"`{name}`" in report
    assert "| readable | 2 |" in report


def test_write_manifest_round_trips_atomically(raw_dir, tmp_path):
    manifest = build_manifest(raw_dir, progress=False)
    path = write_manifest(manifest, tmp_path / "out" / "manifest.jsonl")
    assert read_manifest(path) == manifest
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.jsonl"]  # no temp file left


def test_summary_of_nothing_is_zero():
    summary = summarize_manifest([])
    assert (summary["files"], summary["readable"], summary["total_hours"]) == (0, 0, 0.0)
    assert "No file was skipped." in format_report(summary)


def test_non_utf8_name_is_readable_and_the_report_and_summary_escape_it(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    sf.write(os.fsencode(raw) + b"/caf\xe9.wav", _tone(1.0, 16000), 16000)
    (raw / os.fsdecode(b"br\xf6ken.wav")).write_bytes(b"RIFF....WAVEfmt garbage")
    manifest = build_manifest(raw, progress=False)
    assert [(row["relpath"], row["readable"]) for row in manifest] == [
        ("br\udcf6ken.wav", False), ("caf\udce9.wav", True)]
    summary = summarize_manifest(manifest)
    assert summary["skipped_files"][0]["relpath"] == "br\\xf6ken.wav"
    json.dumps(summary, ensure_ascii=False).encode("utf-8")  # strict UTF-8 writers take the summary
    report = format_report(summary)
    assert "| `br\\xf6ken.wav` | cannot open" in report
    report.encode("utf-8")
    # the manifest keeps the real name: the split copies the file by it
    assert read_manifest(write_manifest(manifest, tmp_path / "m.jsonl")) == manifest


def test_float_file_with_nan_or_inf_samples_is_corrupt(tmp_path):
    wave = _tone(1.0, 16000)
    wave[9000] = np.inf
    sf.write(tmp_path / "inf.wav", wave, 16000, subtype="DOUBLE")
    row = probe_audio_file(tmp_path / "inf.wav", tmp_path)
    assert (row["readable"], row["reason"]) == (False, "non-finite samples: NaN or Inf from frame 9000")
    assert summarize_manifest([row])["skipped_reasons"] == {"non-finite samples": 1}


def test_self_looping_link_is_reported_not_fatal(tmp_path):
    sf.write(tmp_path / "good.wav", _tone(1.0, 16000), 16000)
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop.wav")
    manifest = build_manifest(tmp_path, progress=False)
    assert [(row["relpath"], row["readable"]) for row in manifest] == [("good.wav", True), ("loop.wav", False)]
    assert "| `loop.wav` | cannot stat: Too many levels of symbolic links |" in format_report(summarize_manifest(manifest))


def test_probe_measures_the_loudness_of_usable_files_only(raw_dir, tmp_path):
    # BS.1770: a 1 kHz sine of peak 0.1 in one channel reads -23 LUFS (20 log10(0.1) - 3.01)
    t = np.arange(2 * 16000) / 16000
    sf.write(tmp_path / "minus23.wav", (0.1 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 16000)
    assert probe_audio_file(tmp_path / "minus23.wav", tmp_path)["loudness_lufs"] == pytest.approx(-23.0, abs=0.2)
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(tmp_path / "click.wav", _tone(0.2, 16000), 16000)  # shorter than one 400 ms block
    assert probe_audio_file(tmp_path / "silent.wav", tmp_path)["loudness_lufs"] is None
    assert probe_audio_file(tmp_path / "click.wav", tmp_path)["loudness_lufs"] is None
    assert probe_audio_file(raw_dir / "empty.wav", raw_dir)["loudness_lufs"] is None
    assert probe_audio_file(tmp_path / "minus23.wav", tmp_path, loudness_seconds=0)["loudness_lufs"] is None


def test_report_embeds_its_histograms_under_the_table(raw_dir):
    report = format_report(summarize_manifest(build_manifest(raw_dir, progress=False)),
                           figure=("Durations and loudness", "data_histograms.png"))
    table_end = report.index("| formats |")
    assert report.index("![Durations and loudness](data_histograms.png)") > table_end
