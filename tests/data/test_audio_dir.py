"""AudioDirDataset: upstream SampleDataset items, plus skipping and counting of bad files."""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_ops.data.audio_dir import AudioDirDataset, AudioSource
from stable_audio_ops.data.collate import collation_fn
from stable_audio_ops.errors import ConfigError, DatasetError

SR = 16000


def _sine(path, seconds: float, sr: int = SR, channels: int = 2, hz: float = 440.0, amp: float = 0.5):
    t = np.arange(int(seconds * sr)) / sr
    wave = (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    sf.write(path, np.stack([wave] * channels, axis=1), sr)
    return path


def _dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


def _dataset(paths, **kw) -> AudioDirDataset:
    kw.setdefault("sample_size", 4096)
    kw.setdefault("sample_rate", SR)
    return AudioDirDataset(paths, **kw)


def test_item_has_upstream_metadata(tmp_path):
    (tmp_path / "sub").mkdir()
    _sine(tmp_path / "sub" / "a.wav", 1.5)
    ds = _dataset([tmp_path])
    audio, info = ds[0]
    assert audio.shape == (2, 4096) and audio.dtype == torch.float32
    assert info["path"] == str(tmp_path / "sub" / "a.wav") and info["relpath"] == "sub/a.wav"
    assert info["sample_rate"] == SR and info["seconds_total"] == 2
    assert 0 <= info["seconds_start"] <= 1
    t0, t1 = info["timestamps"]
    assert 0 <= t0 < t1 <= 1 and t1 - t0 == pytest.approx(4096 / 24000)
    assert info["padding_mask"].shape == (4096,) and info["padding_mask"].sum() == 4096
    assert info["load_time"] >= 0
    assert audio.abs().max() <= 1


def test_item_equals_same_window_of_fully_decoded_file(tmp_path):
    path = tmp_path / "n.flac"
    sf.write(path, (np.random.default_rng(3).standard_normal((SR * 2, 2)) * 0.2).astype(np.float32), SR)
    full = torch.from_numpy(sf.read(path, dtype="float32", always_2d=True)[0].T.copy())
    ds = _dataset([tmp_path], phase_flip=False)
    for _ in range(5):
        audio, info = ds[0]
        offset = round(info["timestamps"][0] * full.shape[-1])
        assert torch.equal(audio, full[:, offset : offset + 4096])


def test_short_file_is_padded_with_mask(tmp_path):
    _sine(tmp_path / "short.wav", 0.1)  # 1600 samples < 4096
    audio, info = _dataset([tmp_path], random_crop=True)[0]
    assert audio.shape == (2, 4096)
    assert audio[:, :1600].abs().sum() > 0 and audio[:, 1600:].abs().sum() == 0
    assert info["padding_mask"][:1600].all() and not info["padding_mask"][1600:].any()
    assert info["seconds_total"] == 1 and info["timestamps"] == (0.0, 1.0)


def test_channel_conversion(tmp_path):
    _sine(tmp_path / "mono.wav", 0.5, channels=1)
    stereo_item = _dataset([tmp_path], force_channels="stereo", phase_flip=False)[0][0]
    assert stereo_item.shape == (2, 4096) and torch.equal(stereo_item[0], stereo_item[1])

    other = tmp_path / "st"
    other.mkdir()
    t = np.arange(SR) / SR
    left, right = 0.4 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 300 * t)
    sf.write(other / "lr.wav", np.stack([left, right], 1).astype(np.float32), SR, subtype="FLOAT")
    mono_item, info = _dataset([other], force_channels="mono", phase_flip=False, random_crop=False)[0]
    assert mono_item.shape == (1, 4096)
    np.testing.assert_allclose(mono_item[0].numpy(), ((left + right) / 2)[:4096], atol=1e-6)


def test_48k_file_resampled_to_16k_keeps_frequency(tmp_path):
    _sine(tmp_path / "hi.flac", 2.0, sr=48000, hz=1000)
    ds = _dataset([tmp_path], sample_size=8000, sample_rate=16000)
    audio, info = ds[0]
    assert audio.shape == (2, 8000) and info["sample_rate"] == 16000 and info["seconds_total"] == 2
    assert _dominant_hz(audio[0].numpy(), 16000) == pytest.approx(1000, abs=3)


def test_bad_files_are_skipped_at_scan_and_counted(tmp_path, caplog):
    _sine(tmp_path / "good.wav", 0.5)
    (tmp_path / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "zero_frames.wav", np.zeros((0, 2), dtype=np.float32), SR)
    _sine(tmp_path / "tiny.wav", 0.01)
    (tmp_path / "notes.txt").write_text("not audio")
    _sine(tmp_path / ".hidden.wav", 0.5)
    with caplog.at_level(logging.WARNING):
        ds = _dataset([tmp_path], min_length_sec=0.05)
    assert [f.path for f in ds.files] == [str(tmp_path / "good.wav")]
    assert len(ds) == 1 and ds.skipped_count == 4
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in ds.skipped.items()}
    # the data-preparation probe's words (one check for both, see tests/data/test_files.py)
    assert reasons["corrupt.flac"].startswith("cannot open")
    assert reasons["empty.wav"] == "empty"
    assert reasons["zero_frames.wav"] == "empty"
    assert reasons["tiny.wav"].startswith("too short")
    for name in reasons:
        assert sum(name in rec.getMessage() for rec in caplog.records) == 1  # warned once, by name
    assert ds.stats()["candidates"] == 5


def test_float_file_with_nan_or_inf_is_skipped_at_scan_not_trained_on_as_silence(tmp_path):
    _sine(tmp_path / "good.wav", 0.5)
    for name, value in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        wave = np.full((SR, 2), 0.25, dtype=np.float32)
        wave[SR - 10] = value  # near the end: a header and head/tail read would not see it
        sf.write(tmp_path / name, wave, SR, subtype="FLOAT")
    ds = _dataset([tmp_path])
    assert [f.path for f in ds.files] == [str(tmp_path / "good.wav")]
    assert {p.rsplit("/", 1)[-1]: r for p, r in ds.skipped.items()} == {
        "inf.wav": f"non-finite samples: NaN or Inf from frame {SR - 10}",
        "nan.wav": f"non-finite samples: NaN or Inf from frame {SR - 10}",
    }
    assert ds.stats()["skipped"] == 2 and ds.silent_draws == 0


def test_crop_that_turns_non_finite_after_the_scan_marks_the_file_bad(tmp_path):
    for i in range(3):
        _sine(tmp_path / f"ok{i}.wav", 0.5, hz=300 + 100 * i)
    victim = tmp_path / "victim.wav"
    sf.write(victim, np.full((SR // 2, 2), 0.25, dtype=np.float32), SR, subtype="FLOAT")
    ds = _dataset([tmp_path], random_crop=False)
    assert len(ds) == 4
    sf.write(victim, np.full((SR // 2, 2), np.nan, dtype=np.float32), SR, subtype="FLOAT")  # rewritten after the scan
    index = [f.path for f in ds.files].index(str(victim))
    audio, info = ds[index]
    assert torch.isfinite(audio).all() and info["path"] != str(victim)
    assert ds.skipped[str(victim)].endswith("non-finite samples: NaN or Inf in the crop)")
    assert ds.silent_draws == 0


def test_file_name_that_is_not_utf8_is_read(tmp_path, caplog):
    name = os.fsdecode(b"caf\xe9.wav")  # how Python shows a Latin-1 name on a UTF-8 system: 'caf\udce9.wav'
    sf.write(os.fsencode(tmp_path) + b"/caf\xe9.wav", np.full((SR, 2), 0.25, dtype=np.float32), SR)
    (tmp_path / os.fsdecode(b"br\xf6ken.wav")).write_bytes(b"RIFFjunk")
    with caplog.at_level(logging.WARNING):
        ds = _dataset([tmp_path])
    assert [r.getMessage() for r in caplog.records] == [f"skipping audio file {tmp_path}/br\\xf6ken.wav: cannot open: "
                                                        "Format not recognised."]
    assert [f.path for f in ds.files] == [os.path.join(str(tmp_path), name)]
    audio, info = ds[0]
    assert info["relpath"] == name and audio.abs().max() == pytest.approx(0.25)


def test_no_readable_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"RIFFjunk")
    with pytest.raises(DatasetError, match=rf"no readable audio file in {tmp_path}.*x.wav"):
        _dataset([tmp_path])
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"no files with extensions \.wav"):
        _dataset([empty])
    with pytest.raises(DatasetError, match=r"dataset folder not found: .*missing \(cfg.json: datasets\[0\]\.path\)"):
        AudioDirDataset([AudioSource("a", str(tmp_path / "missing"), key_path="datasets[0]")], source="cfg.json")


def test_file_that_goes_bad_during_an_epoch_is_skipped_and_counted(tmp_path, caplog):
    for i in range(4):
        _sine(tmp_path / f"ok{i}.flac", 0.5, hz=200 + 100 * i)
    victim = _sine(tmp_path / "victim.flac", 0.5)
    ds = _dataset([tmp_path])
    assert len(ds) == 5
    victim.write_bytes(b"\x00" * 1000)  # e.g. a network share hiccup after the scan
    loader = torch.utils.data.DataLoader(ds, batch_size=1, shuffle=False, collate_fn=collation_fn)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # two epochs: the bad file is drawn again but reported once
            paths = [meta[0]["path"] for _, meta in loader]
            assert len(paths) == 5 and str(victim) not in paths
    assert list(ds.skipped) == [str(victim)] and ds.skipped_count == 1
    assert ds.skipped[str(victim)].startswith("failed to load")
    assert sum("victim.flac" in r.getMessage() for r in caplog.records) == 1
    assert ds.stats()["files"] == 4


def test_silent_crops_are_redrawn(tmp_path):
    sf.write(tmp_path / "a_silent.wav", np.zeros((SR, 2), dtype=np.float32), SR)
    _sine(tmp_path / "loud.wav", 1.0)
    ds = _dataset([tmp_path])
    random.seed(0)
    paths = {ds[0][1]["path"] for _ in range(5)}  # index 0 is the silent file (sorted order)
    assert paths == {str(tmp_path / "loud.wav")} and ds.silent_draws >= 5


def test_all_silent_gives_bounded_error(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros((SR, 1), dtype=np.float32), SR)
    with pytest.raises(DatasetError, match="could not draw a usable item.*silent crops"):
        _dataset([tmp_path], max_draws=5)[0]


def test_custom_metadata_from_file_path_with_reject_and_extra_audio(tmp_path):
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    _sine(audio_dir / "keep.wav", 1.0)
    _sine(audio_dir / "reject_me.wav", 1.0)
    module = tmp_path / "my_md.py"
    module.write_text(textwrap.dedent("""
        import torch

        def get_custom_metadata(info, audio):
            return {
                "prompt": "a sine " + info["relpath"],
                "peak": float(audio.abs().max()),
                "__reject__": "reject_me" in info["path"],
                "__audio__": {"reference": torch.ones(1, 100)},
            }
    """))
    ds = _dataset([AudioSource("s", str(audio_dir), str(module))], phase_flip=False)
    for _ in range(4):
        audio, info = ds[1]  # index 1 = reject_me.wav: always replaced by keep.wav
        assert info["path"].endswith("keep.wav") and info["prompt"] == "a sine keep.wav"
        assert info["peak"] == pytest.approx(0.5, abs=1e-3)
        assert "__reject__" not in info and "__audio__" not in info
        ref = info["reference"]
        assert ref.shape == (2, 4096) and ref[:, :100].eq(1).all() and ref[:, 100:].eq(0).all()
    assert ds.rejected_draws >= 4
    clone = pickle.loads(pickle.dumps(ds))  # picklable for spawn workers: the hook re-imports lazily
    assert clone[0][1]["prompt"] == "a sine keep.wav"


def test_custom_metadata_dotted_module_reads_sidecars(tmp_path):
    _sine(tmp_path / "n1.wav", 0.5)
    _sine(tmp_path / "n2.wav", 0.5)
    (tmp_path / "n1.json").write_text(json.dumps({"caption": "a soft piano note", "midi": 60, "path": "stale"}))
    ds = _dataset([AudioSource("d", str(tmp_path), "stable_audio_ops.data.sidecar_metadata")])
    info1, info2 = ds[0][1], ds[1][1]
    assert info1["prompt"] == "a soft piano note" and info1["caption"] == "a soft piano note"
    assert info1["midi"] == 60 and info1["path"] == str(tmp_path / "n1.wav")  # computed keys win
    assert "prompt" not in info2  # no sidecar: nothing added


def test_custom_metadata_errors_name_key_and_module(tmp_path):
    _sine(tmp_path / "a.wav", 0.2)
    no_fn = tmp_path / "no_fn.py"
    no_fn.write_text("X = 1\n")
    src = [AudioSource("a", str(tmp_path), str(no_fn), key_path="datasets[0]")]
    with pytest.raises(ConfigError, match=r"ds\.json: datasets\[0\]\.custom_metadata_module: .*no_fn\.py.*get_custom"):
        AudioDirDataset(src, source="ds.json")
    src = [AudioSource("a", str(tmp_path), "no_such_pkg.metadata", key_path="datasets[0]")]
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.custom_metadata_module: cannot import .*no_such_pkg"):
        AudioDirDataset(src, source="ds.json")
    src = [AudioSource("a", str(tmp_path), str(tmp_path / "gone.py"), key_path="datasets[0]")]
    with pytest.raises(ConfigError, match="file not found"):
        AudioDirDataset(src, source="ds.json")


def test_seeded_items_depend_on_seed_and_index_only(tmp_path):
    """Pre-encoding relies on this: the same files and seed give bitwise-same items, whatever the global
    random state or the order items are read in; the seed still changes the random choices."""
    for i in range(8):
        _sine(tmp_path / f"n{i}.wav", 1.0, hz=220.0 + 50 * i)

    def items(seed, order):
        ds = _dataset([tmp_path], seed=seed)
        order = list(order)
        random.seed(order[0])  # the global state differs between calls: it must not matter
        return {i: ds[i] for i in order}

    forward, backward = items(7, range(8)), items(7, reversed(range(8)))
    for i in range(8):
        assert torch.equal(forward[i][0], backward[i][0])
        assert forward[i][1]["timestamps"] == backward[i][1]["timestamps"]
    # the crop offset and the phase flip are drawn: another seed flips / crops some item differently
    other = items(8, range(8))
    assert any(not torch.equal(forward[i][0], other[i][0]) for i in range(8))
    flipped = [torch.equal(forward[i][0], -_dataset([tmp_path], seed=7, phase_flip=False)[i][0]) for i in range(8)]
    assert 0 < sum(flipped) < 8  # p = 0.5 per item: some flipped, some not
