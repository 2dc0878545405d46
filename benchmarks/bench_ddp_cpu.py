"""Benchmark: the demo autoencoder trained by 1 vs 2 CPU processes (DDP over gloo) through the train CLI.

Three set-ups on the same machine, each a real ``python -m stable_audio_ops.cli.train`` run:
  - 1 process x 1 torch thread,
  - 1 process x 2 torch threads (what a single process gets from both cores),
  - 2 processes x 1 torch thread each (``--num-gpus 2 --accelerator cpu``: DDP, gloo all-reduce).
The per-process batch size is the same in all three (so 2 processes train on twice the samples per
step). Throughput comes from the rank reports (``<save_dir>/ranks/rank-*.json``): samples per second
between the first and last batch, summed over ranks -- start-up (imports, Lightning launching rank 1,
process-group set-up) is reported separately as wall time minus training time.

Data: decaying harmonic tones (like the demo notes) written as 1 s WAV files at 16 kHz, read from
disk by the audio_dir loader with no worker processes.

Run: ``.venv/bin/python benchmarks/bench_ddp_cpu.py [--steps 24] [--batch-size 8]``.
Writes benchmarks/results/ddp_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
MODEL_CONFIG = REPO / "conf" / "base" / "model_configs" / "autoencoder_demo.json"
OUT = REPO / "benchmarks" / "results" / "ddp_cpu.json"
SETUPS = ({"processes": 1, "threads": 1}, {"processes": 1, "threads": 2}, {"processes": 2, "threads": 1})


def write_tones(folder: Path, files: int, sample_rate: int) -> Path:
    rng = np.random.default_rng(0)
    audio = folder / "audio"
    audio.mkdir(parents=True)
    t = np.arange(sample_rate) / sample_rate
    for i in range(files):
        f0 = 110.0 * 2 ** (rng.random() * 3)
        tone = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 6)) * np.exp(-3 * t)
        sf.write(audio / f"tone{i:03d}.wav", tone.astype(np.float32), sample_rate)
    config = folder / "dataset.json"
    config.write_text(json.dumps({"dataset_type": "audio_dir", "datasets": [{"id": "tones", "path": str(audio)}]}))
    return config


def run_setup(setup: dict, dataset: Path, work: Path, steps: int, batch_size: int) -> dict:
    save_dir = work / f"p{setup['processes']}_t{setup['threads']}"
    env = dict(os.environ, OMP_NUM_THREADS=str(setup["threads"]), DO_NOT_TRACK="true",
               MLFLOW_DISABLE_TELEMETRY="true")
    argv = [sys.executable, "-m", "stable_audio_ops.cli.train", "--model-config", str(MODEL_CONFIG),
            "--dataset-config", str(dataset), "--save-dir", str(save_dir), "--num-gpus", str(setup["processes"]),
            "--accelerator", "cpu", "--batch-size", str(batch_size), "--num-workers", "0",
            "--max-steps", str(steps), "--checkpoint-every", str(10 * steps), "--precision", "32",
            "--logger", "none", "--num-threads", str(setup["threads"])]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{setup}: training failed\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    from stable_audio_ops.training.distributed import read_rank_reports

    reports = read_rank_reports(save_dir / "ranks")
    train_seconds = max(r["train_seconds"] for r in reports)
    samples_per_second = sum(r["samples_per_second"] for r in reports)
    return {
        **setup,
        "ranks": len(reports),
        "steps": steps,
        "batch_size_per_process": batch_size,
        "global_batch": batch_size * len(reports),
        "wall_seconds": round(wall, 2),
        "train_seconds": round(train_seconds, 2),
        "startup_and_teardown_seconds": round(wall - train_seconds, 2),
        "steps_per_second": round((steps - 1) / train_seconds, 3),
        "samples_per_second": round(samples_per_second, 2),
        "same_weights_on_all_ranks": len({r["weights_sha256"] for r in reports}) == 1,
        # 1-minute load average before / after: above ~2 on a 2-core box, other work shared the cores
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--files", type=int, default=64)
    args = parser.parse_args()
    model_config = json.loads(MODEL_CONFIG.read_text())
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        work = Path(tmp)
        dataset = write_tones(work / "data", args.files, int(model_config["sample_rate"]))
        for setup in SETUPS:
            row = run_setup(setup, dataset, work, args.steps, args.batch_size)
            results.append(row)
            print(json.dumps(row))
    base = next(r for r in results if r["processes"] == 1 and r["threads"] == 2)["samples_per_second"]
    for row in results:
        row["speedup_vs_1_process_2_threads"] = round(row["samples_per_second"] / base, 2)
    print(f"\n{'setup':<24}{'samples/s':>10}{'steps/s':>9}{'start-up s':>12}{'speed-up':>10}")
    for row in results:
        name = f"{row['processes']} proc x {row['threads']} thread"
        print(f"{name:<24}{row['samples_per_second']:>10}{row['steps_per_second']:>9}"
              f"{row['startup_and_teardown_seconds']:>12}{row['speedup_vs_1_process_2_threads']:>10}")
    payload = {
        "benchmark": "ddp_cpu",
        "model_config": str(MODEL_CONFIG.relative_to(REPO)),
        "sample_size": model_config["sample_size"],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "results": results,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = OUT.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(payload, indent=2))
    os.replace(tmp_out, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
