"""Benchmark: random 1 s crops from 60 s 44.1 kHz stereo FLAC files, one process, one thread.

Compares
  (a) upstream's way: decode the whole file, then crop (torchaudio.load emulated by a full soundfile read),
  (b) a bare soundfile seek + read of the window (the floor for any FLAC loader),
  (c) our AudioDirDataset items at the file's rate (seek-read + pad/crop + metadata + augmentation),
  (d) our AudioDirDataset items resampled to 48 kHz (window read + soxr).
The issue's target: (c) >= 20x (a) and within a small factor of (b).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_data_loading.py [--files 8] [--seconds 8]``.
Writes benchmarks/results/data_loading.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from stable_audio_ops.data.audio_dir import AudioDirDataset

RATE = 44100
FILE_SECONDS = 60
CROP = RATE  # 1 s


def make_files(folder: Path, count: int) -> list[Path]:
    """60 s stereo FLAC files of tones plus noise (noise keeps FLAC from compressing them to nothing)."""
    rng = np.random.default_rng(0)
    t = np.arange(RATE * FILE_SECONDS) / RATE
    paths = []
    for i in range(count):
        tone = 0.3 * np.sin(2 * np.pi * (110 * (i + 1)) * t) + 0.05 * rng.standard_normal(t.shape)
        stereo = np.stack([tone, np.roll(tone, 100)], axis=1).astype(np.float32)
        path = folder / f"track{i:02d}.flac"
        sf.write(path, stereo, RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def measure(methods: dict[str, Callable[[], object]], budget_s: float, rounds: int = 8) -> dict[str, dict]:
    """Items per second of each method, interleaved in ``rounds`` so load from other processes on a
    shared machine hits every method alike. Each method runs ``budget_s / rounds`` per round."""
    for fn in methods.values():
        fn()  # warm-up (imports, first-open costs)
    counts = dict.fromkeys(methods, 0)
    elapsed = dict.fromkeys(methods, 0.0)
    for _ in range(rounds):
        for name, fn in methods.items():
            start = time.perf_counter()
            while True:
                fn()
                counts[name] += 1
                if time.perf_counter() - start >= budget_s / rounds:
                    break
            elapsed[name] += time.perf_counter() - start
    return {
        name: {"items": counts[name], "seconds": round(elapsed[name], 3),
               "samples_per_s": round(counts[name] / elapsed[name], 2),
               "ms_per_sample": round(1000 * elapsed[name] / counts[name], 3)}
        for name in methods
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0, help="time budget per method")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "data_loading.json"))
    args = parser.parse_args()

    torch.set_num_threads(1)
    random.seed(0)
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        paths = make_files(folder, args.files)
        gen_s = time.perf_counter() - t0
        frames = sf.info(paths[0]).frames

        def upstream_full_decode():
            path = random.choice(paths)
            audio = torch.from_numpy(sf.read(path, dtype="float32", always_2d=True)[0].T.copy())
            offset = random.randint(0, audio.shape[-1] - CROP)
            return audio[:, offset : offset + CROP].clone()

        def bare_seek_read():
            path = random.choice(paths)
            with sf.SoundFile(path) as f:
                f.seek(random.randint(0, frames - CROP))
                return f.read(CROP, dtype="float32", always_2d=True)

        ours = AudioDirDataset([folder], sample_size=CROP, sample_rate=RATE, random_crop=True)
        ours_48k = AudioDirDataset([folder], sample_size=48000, sample_rate=48000, random_crop=True)
        assert len(ours) == args.files and ours.skipped_count == 0

        methods = {
            "a_upstream_full_decode_then_crop": upstream_full_decode,
            "b_bare_soundfile_seek_read": bare_seek_read,
            "c_ours_audio_dir_dataset": lambda: ours[random.randrange(len(ours))],
            "d_ours_resampled_to_48k": lambda: ours_48k[random.randrange(len(ours_48k))],
        }
        results = measure(methods, args.seconds)

    a = results["a_upstream_full_decode_then_crop"]["samples_per_s"]
    b = results["b_bare_soundfile_seek_read"]["samples_per_s"]
    c = results["c_ours_audio_dir_dataset"]["samples_per_s"]
    report = {
        "setup": {
            "files": args.files, "file_seconds": FILE_SECONDS, "sample_rate": RATE, "channels": 2,
            "format": "FLAC PCM_16", "crop_samples": CROP, "torch_threads": torch.get_num_threads(),
            "generation_s": round(gen_s, 2), "python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "soundfile": sf.__version__, "libsndfile": sf.__libsndfile_version__,
            "torch": torch.__version__,
        },
        "results": results,
        "speedup_ours_vs_upstream": round(c / a, 1),
        "ours_vs_bare_seek_read": round(b / c, 2),
        "target": "ours >= 20x upstream and within a small factor of a bare seek-read",
        "target_met": bool(c / a >= 20),
    }

    print(f"{'method':40s} {'samples/s':>10s} {'ms/sample':>10s} {'items':>6s}")
    for name, r in results.items():
        print(f"{name:40s} {r['samples_per_s']:10.1f} {r['ms_per_sample']:10.2f} {r['items']:6d}")
    print(f"ours vs upstream: {report['speedup_ours_vs_upstream']}x faster; "
          f"bare seek-read is {report['ours_vs_bare_seek_read']}x ours")

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f".{out.name}.tmp")
    tmp_out.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp_out, out)
    print(f"wrote {out}")
    if not report["target_met"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
