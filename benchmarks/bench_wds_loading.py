"""Benchmark: samples/s of training batches from S3 shards (moto) vs local shards vs a local folder.

The same clips are served three ways, each through the real loader users get:
  (a) ``audio_dir``: the folder of FLAC files (AudioDirDataset via create_dataloader_from_config),
  (b) ``wds`` local: WebDataset shards of the same clips in a local folder,
  (c) ``s3``: the same shards uploaded to a moto S3 server on 127.0.0.1 (real HTTP, boto3 streaming),
at 1, 2 and 4 DataLoader workers. Each configuration reads one warm-up epoch (worker start-up, first
connections) and then ``--epochs`` timed epochs with persistent workers; samples/s is over the timed
epochs. On this 2-core box 4 workers cannot beat 2; the point is the relative cost of the sources.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_wds_loading.py [--clips 96] [--epochs 2]``.
Writes benchmarks/results/wds_loading.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stable_audio_ops.data import s3  # noqa: E402
from stable_audio_ops.data.dataloader import create_dataloader_from_config  # noqa: E402
from stable_audio_ops.data.preparation.shards import upload_folder_to_s3, write_webdataset_shards  # noqa: E402
from tests.data.s3_server import AWS_TEST_ENV, AWS_UNSET, MotoServer  # noqa: E402

RATE = 44100
CLIP_SECONDS = 4
SAMPLE_SIZE = 65536
BATCH = 8


def make_clips(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(RATE * CLIP_SECONDS) / RATE
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        tone = 0.3 * np.sin(2 * np.pi * (110 + 7 * i) * t) + 0.05 * rng.standard_normal(t.shape)
        sf.write(folder / f"clip{i:04d}.flac", np.stack([tone, np.roll(tone, 50)], 1).astype(np.float32), RATE,
                 subtype="PCM_16")


def loader_for(kind: str, folder: Path, shards: Path, s3_url: str, endpoint: str, workers: int):
    if kind == "audio_dir":
        cfg = {"dataset_type": "audio_dir", "datasets": [{"id": "clips", "path": str(folder)}]}
        return create_dataloader_from_config(cfg, BATCH, SAMPLE_SIZE, RATE, 2, num_workers=workers)
    from stable_audio_ops.data.wds import WdsSource, WebDatasetAudio, WebDatasetLoader

    if kind == "wds_local":
        src = WdsSource("clips", path=str(shards))
    else:
        src = WdsSource("clips", s3_path=s3_url, s3=s3.S3Settings(endpoint_url=endpoint))
    ds = WebDatasetAudio([src], SAMPLE_SIZE, RATE, BATCH, resampled_shards=False, shuffle=True, shuffle_buffer=64)
    return WebDatasetLoader(ds, num_workers=workers)


def run_one(loader, epochs: int) -> dict:
    started = time.perf_counter()
    warm = sum(audio.shape[0] for audio, _ in loader)
    first_epoch_s = time.perf_counter() - started
    started = time.perf_counter()
    samples = 0
    for _ in range(epochs):
        samples += sum(audio.shape[0] for audio, _ in loader)
    elapsed = time.perf_counter() - started
    return {"samples": samples, "seconds": round(elapsed, 3), "samples_per_s": round(samples / elapsed, 1),
            "first_epoch_s": round(first_epoch_s, 3), "epoch_samples": warm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=192)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--samples-per-shard", type=int, default=16)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "wds_loading.json"))
    args = parser.parse_args()
    os.environ.update(AWS_TEST_ENV)
    for name in AWS_UNSET:
        os.environ.pop(name, None)
    torch.set_num_threads(1)

    results = []
    with tempfile.TemporaryDirectory() as tmp, MotoServer() as server:
        tmp_path = Path(tmp)
        folder, shards = tmp_path / "clips", tmp_path / "shards"
        t0 = time.perf_counter()
        make_clips(folder, args.clips)
        summary = write_webdataset_shards(folder, shards, args.samples_per_shard, audio_format="copy")
        shard_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        s3_url = "s3://bench/clips"
        upload_folder_to_s3(shards, s3_url, settings=s3.S3Settings(endpoint_url=server.endpoint), create_bucket=True,
                            suffixes=(".tar",))
        upload_s = time.perf_counter() - t0
        for workers in args.workers:
            for kind in ("audio_dir", "wds_local", "s3"):
                loader = loader_for(kind, folder, shards, s3_url, server.endpoint, workers)
                row = {"source": kind, "workers": workers, **run_one(loader, args.epochs)}
                del loader
                print(json.dumps(row), flush=True)
                results.append(row)

    payload = {
        "benchmark": "wds_loading",
        "description": "training batches (8 x stereo 65536 @ 44.1 kHz, random crops of 4 s FLAC clips); "
                       "samples/s over timed epochs after a warm-up epoch, persistent workers",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "platform": platform.platform()},
        "setup": {"clips": args.clips, "clip_seconds": CLIP_SECONDS, "shards": len(summary["shards"]),
                  "samples_per_shard": args.samples_per_shard, "epochs_timed": args.epochs,
                  "write_shards_s": round(shard_s, 2), "upload_s": round(upload_s, 2),
                  "s3_server": "moto_server 127.0.0.1 (in-memory)"},
        "results": results,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f".{out.name}.tmp")
    tmp_out.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp_out, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
