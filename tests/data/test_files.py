"""The one folder scanner: the files the datasets read are the files the data-preparation report lists."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from stable_audio_ops.data.audio_dir import AudioDirDataset
from stable_audio_ops.data.files import files_with_suffix, printable_path, scan_audio_folder, walk_files
from stable_audio_ops.data.pre_encoded import find_latent_files
from stable_audio_ops.data.preparation.probe import build_manifest
from stable_audio_ops.data.wds import list_local_shards


def _rel(paths: list[str], root) -> list[str]:
    return [os.path.relpath(p, root) for p in paths]


def test_scan_finds_nested_uppercase_skips_hidden_folders(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / ".cache").mkdir()
    for rel in ["b/c/x.FLAC", "a.Wav", ".cache/y.wav", "b/z.aiff", "._a.wav", "notes.txt"]:
        (tmp_path / rel).write_bytes(b"")
    # files of a folder first, then its sub-folders: the order datasets number their items in
    assert _rel(scan_audio_folder(tmp_path), tmp_path) == ["a.Wav", "b/z.aiff", "b/c/x.FLAC"]


def test_linked_folders_are_followed_once_and_a_link_loop_ends(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x.wav").write_bytes(b"")
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real")  # real/loop -> real
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    # each real folder once: under whichever name the walk reaches first
    assert _rel(scan_audio_folder(tmp_path), tmp_path) == ["linked/x.wav"]


def test_shards_and_latents_use_the_same_rules(tmp_path):
    for rel in ["a/1.tar", "a/.2.tar", ".hidden/3.tar", "b/4.tar.gz", "a/5.NPY", "a/6.npy", "a/.7.npy"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert _rel(list_local_shards(tmp_path), tmp_path) == ["a/1.tar"]
    assert _rel(find_latent_files(tmp_path), tmp_path) == ["a/5.NPY", "a/6.npy"]  # extension case as before
    assert _rel(walk_files(tmp_path, files_with_suffix(".npy")), tmp_path) == ["a/6.npy"]


def test_the_probe_reports_exactly_the_files_a_dataset_reads(tmp_path):
    raw, elsewhere = tmp_path / "raw", tmp_path / "elsewhere"
    (raw / ".cache").mkdir(parents=True)
    elsewhere.mkdir()
    tone = (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    for path in (raw / "a.wav", raw / "B.FLAC", raw / ".cache" / "hidden.wav", elsewhere / "linked_in.wav"):
        sf.write(path, tone, 16000)
    (raw / "more").symlink_to(elsewhere)  # audio a user linked in: training reads it, so the report lists it
    (raw / "broken.wav").write_bytes(b"not audio")
    manifest = build_manifest(raw, progress=False)
    dataset = AudioDirDataset([raw], sample_size=4000, sample_rate=16000, force_channels="mono")
    assert {row["path"] for row in manifest} == {f.path for f in dataset.files} | set(dataset.skipped)
    assert sorted(row["relpath"] for row in manifest) == ["B.FLAC", "a.wav", "broken.wav", "more/linked_in.wav"]
    assert [row["relpath"] for row in manifest if not row["readable"]] == ["broken.wav"]


def test_probe_and_dataset_skip_the_same_files_for_the_same_reasons(tmp_path):
    """A self-looping link, NaN/Inf in a float file, a truncated copy: both sides name them alike, and a valid
    file whose name is not UTF-8 is usable on both."""
    raw = tmp_path / "raw"
    raw.mkdir()
    tone = (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    sf.write(raw / "good.wav", tone, 16000)
    sf.write(os.fsencode(raw) + b"/caf\xe9.wav", tone, 16000)
    for name, value in (("nan.wav", np.nan), ("inf.wav", -np.inf)):
        bad = tone.copy()
        bad[12345] = value
        sf.write(raw / name, bad, 16000, subtype="FLOAT")
    sf.write(raw / "whole.flac", tone, 16000)
    flac = (raw / "whole.flac").read_bytes()
    (raw / "whole.flac").unlink()
    (raw / "cut.flac").write_bytes(flac[: len(flac) // 2])
    (raw / "loop.wav").symlink_to(raw / "loop.wav")

    manifest = build_manifest(raw, progress=False)
    dataset = AudioDirDataset([raw], sample_size=4000, sample_rate=16000, force_channels="mono")
    probe_skipped = {row["path"]: row["reason"] for row in manifest if not row["readable"]}
    assert probe_skipped == dataset.skipped
    assert sorted(os.path.basename(p) for p in probe_skipped) == ["cut.flac", "inf.wav", "loop.wav", "nan.wav"]
    assert probe_skipped[str(raw / "nan.wav")] == "non-finite samples: NaN or Inf from frame 12345"
    assert probe_skipped[str(raw / "loop.wav")].startswith("cannot stat: ")
    usable = [str(raw / "caf\udce9.wav"), str(raw / "good.wav")]
    assert sorted(row["path"] for row in manifest if row["readable"]) == usable == sorted(f.path for f in dataset.files)


def test_printable_path_escapes_bytes_that_are_not_utf8():
    assert printable_path(os.fsdecode(b"/data/caf\xe9 \xff.wav")) == "/data/caf\\xe9 \\xff.wav"
    assert printable_path("/data/café.wav") == "/data/café.wav"
    assert printable_path("lone \ud800") == "lone \\ud800"  # not a file-system escape: still writable
