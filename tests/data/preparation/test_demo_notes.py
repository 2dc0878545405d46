"""The demo dataset must be real, correctly labelled audio: right files, right captions, right pitch and loudness."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stable_audio_ops.data.preparation import demo_notes
from stable_audio_ops.data.preparation.demo_notes import (
    SoundfontNotFoundError,
    SynthUnavailableError,
    make_caption,
    midi_to_hz,
    midi_to_note_name,
    plan_notes,
    render_demo_notes,
    resolve_instruments,
)
from stable_audio_ops.errors import DatasetError

TINY = dict(instruments=["flute", "trumpet"], midi_low=69, midi_high=70, velocities=(40, 120), progress=False)


@pytest.fixture(scope="module")
def tiny_render(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "notes"
    summary = render_demo_notes(out, **TINY)
    return out, summary


def _acf_f0(x: np.ndarray, sr: int, fmin: float = 50.0, fmax: float = 2000.0) -> float:
    """Autocorrelation pitch: the shortest lag whose ACF peak is within 90 % of the best one (avoids octave-down picks)."""
    x = x - x.mean()
    n = len(x)
    r = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * n)) ** 2)[:n]
    r = r / r[0]
    lo, hi = int(sr / fmax), int(sr / fmin)
    seg = r[lo:hi]
    peaks = [i for i in range(1, len(seg) - 1) if seg[i] >= seg[i - 1] and seg[i] > seg[i + 1]]
    best = max(seg[p] for p in peaks)
    p = next(p for p in peaks if seg[p] >= 0.9 * best)
    a, b, c = seg[p - 1], seg[p], seg[p + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c)
    return sr / (lo + p + shift)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- labels and plan (no synth needed)


def test_labels_and_captions():
    assert [midi_to_note_name(m) for m in (21, 60, 61, 69, 108)] == ["A0", "C4", "C#4", "A4", "C8"]
    assert midi_to_hz(69) == pytest.approx(440.0)
    assert midi_to_hz(60) == pytest.approx(261.6256, abs=1e-3)
    piano, epiano = resolve_instruments(["grand piano", "electric_piano"])
    assert make_caption(piano, 60, 40) == "a grand piano playing C4, soft"
    assert make_caption(epiano, 61, 80) == "an electric piano playing C#4, medium"
    assert make_caption(piano, 72, 120).endswith("C5, loud")


def test_default_plan_is_twelve_instruments_clipped_to_their_ranges():
    chosen = resolve_instruments(None)
    assert len(chosen) == 12
    plan = plan_notes(chosen, 48, 72, (40, 80, 120))
    assert len(plan) == 786  # 19.65 min of 1.5 s clips
    flute_midis = {midi for inst, midi, _ in plan if inst.name == "flute"}
    assert min(flute_midis) == 60 and max(flute_midis) == 72  # a flute is never asked for a C3
    assert len(resolve_instruments("all")) > len(chosen)


def test_unknown_instrument_lists_known_names():
    with pytest.raises(ValueError, match="unknown instrument.*kazoo.*grand_piano"):
        resolve_instruments(["flute", "kazoo"])


def test_missing_soundfont_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope" / "FluidR3_GM.sf2"
    with pytest.raises(SoundfontNotFoundError) as info:
        render_demo_notes(tmp_path / "out", soundfont=missing, progress=False)
    message = str(info.value)
    assert str(missing) in message and "apt-get install fluid-soundfont-gm" in message
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "out").exists()


def test_missing_pyfluidsynth_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # makes `import fluidsynth` raise ImportError
    with pytest.raises(SynthUnavailableError) as info:
        demo_notes._import_fluidsynth()
    assert "apt-get install fluidsynth" in str(info.value) and "pip install pyfluidsynth" in str(info.value)


# ----------------------------------------------------------------------------- rendering


def test_render_writes_captioned_clips(tiny_render):
    out, summary = tiny_render
    assert summary["count"] == 8 and summary["reused"] is False
    assert summary["seconds"] == pytest.approx(8 * 1.5)
    rows = _rows(out)
    assert len(rows) == 8
    assert {r["instrument"] for r in rows} == {"flute", "trumpet"}
    for row in rows:
        wav = out / row["path"]
        sidecar = json.loads(wav.with_suffix(".json").read_text())
        assert (
            sidecar["caption"]
            == sidecar["prompt"]
            == make_caption(
                resolve_instruments([sidecar["instrument"]])[0], sidecar["midi"], sidecar["velocity"]
            )
        )
        for key in ("family", "gm_program", "note_name", "dynamic", "f0_hz", "soundfont"):
            assert key in sidecar
        assert sidecar["dynamic"] == {40: "soft", 120: "loud"}[sidecar["velocity"]]
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 24000, "PCM_16")
    assert "MIT" in (out / "LICENSE_SOUNDFONT.txt").read_text()


def test_rendered_pitch_and_loudness_follow_the_labels(tiny_render):
    out, _ = tiny_render
    rms: dict[tuple[str, int, int], float] = {}
    for row in _rows(out):
        audio, sr = sf.read(str(out / row["path"]), dtype="float32")
        held = audio[int(0.1 * sr) : int(1.0 * sr)]  # key down, past the attack
        rms[(row["instrument"], row["midi"], row["velocity"])] = float(np.sqrt(np.mean(held**2)))
        assert rms[(row["instrument"], row["midi"], row["velocity"])] > 1e-3, f"{row['id']} is silent"
        if row["instrument"] == "flute":
            cents = 1200 * np.log2(_acf_f0(held, sr) / midi_to_hz(row["midi"]))
            assert abs(cents) < 50, f"{row['id']}: {cents:.0f} cents off"
    for (inst, midi, vel), value in rms.items():
        if vel == 40:
            assert rms[(inst, midi, 120)] > 2.0 * value, f"{inst} {midi}: loud is not louder than soft"


def test_rerun_with_same_params_is_skipped_and_new_params_rerender(tmp_path):
    out = tmp_path / "notes"
    first = render_demo_notes(out, **TINY)
    wav = out / "audio" / "flute-069-040.wav"
    mtime = wav.stat().st_mtime_ns
    started = time.perf_counter()
    again = render_demo_notes(out, **TINY)
    assert time.perf_counter() - started < 0.5
    assert again["reused"] is True and again["count"] == first["count"]
    assert wav.stat().st_mtime_ns == mtime

    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    forced = render_demo_notes(out, **TINY, force=True)
    assert forced["reused"] is False
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # deterministic, byte for byte (DVC sees no change)

    changed = render_demo_notes(out, **{**TINY, "velocities": (80,)})
    assert changed["reused"] is False and changed["count"] == 4
    assert not wav.exists()  # the whole folder was replaced, no stale clips remain
    assert sorted(p.name for p in (out / "audio").glob("*.wav")) == [
        "flute-069-080.wav",
        "flute-070-080.wav",
        "trumpet-069-080.wav",
        "trumpet-070-080.wav",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["notes"]  # no temp folders left behind


def test_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(DatasetError, match="not written by render_demo_notes"):
        render_demo_notes(tmp_path, **TINY)
    assert (tmp_path / "mine.txt").read_text() == "precious"
