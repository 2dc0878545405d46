"""Benchmark: generation wall time of the demo latent diffusion model vs sampler steps and batch size.

Times :func:`generate_diffusion_cond` end to end (prompt encoding, sampling with CFG, VAE decoding)
for the demo DiT config (conf/base/model_configs/dit_demo.json, demo autoencoder as pretransform,
random weights: speed does not depend on them) at the pipeline's clip length, for steps in
{10, 25, 50, 100} x batch in {1, 4, 16}, with the objective's default sampler (rectified flow:
euler) and cfg_scale 5. Also times one uncached prompt encoding, to show what the conditioner cache
saves. Medians of ``--repeats`` runs, torch threads ``--threads``.

Run: ``.venv/bin/python benchmarks/bench_generation.py [--threads 2] [--repeats 3]``.
Writes benchmarks/results/generation.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dit_training import REPO, demo_model_config  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "generation.json"


def main() -> None:
    from stable_audio_ops.inference.generation import generate_diffusion_cond
    from stable_audio_ops.models.factory import create_model_from_config

    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config, _ = demo_model_config()
    torch.manual_seed(0)
    model = create_model_from_config(config).eval().requires_grad_(False)
    sample_size = config["sample_size"]
    prompt = {"prompt": "a flute playing G4, soft", "seconds_total": 2}

    encoder = model.conditioner.conditioners["prompt"]
    start = time.perf_counter()
    encoder._encode([f"an uncached caption number {i}" for i in range(16)], "cpu")
    uncached_16 = time.perf_counter() - start
    start = time.perf_counter()
    encoder._encode([f"an uncached caption number {i}" for i in range(16)], "cpu")
    cached_16 = time.perf_counter() - start

    rows = []
    for batch in args.batches:
        for steps in args.steps:
            times = []
            for r in range(args.repeats):
                start = time.perf_counter()
                audio = generate_diffusion_cond(model, steps=steps, cfg_scale=5.0, conditioning=[prompt] * batch,
                                                batch_size=batch, sample_size=sample_size, seed=r, progress=False)
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            seconds = batch * audio.shape[-1] / config["sample_rate"]
            rows.append({"batch_size": batch, "steps": steps, "median_s": median, "all_s": times,
                         "audio_seconds": seconds, "realtime_factor": seconds / median})
            print(f"batch={batch:2d} steps={steps:3d}: {median:.3f} s  ({seconds / median:.1f}x real time)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"config": "conf/base/model_configs/dit_demo.json", "sample_size": sample_size,
                               "sample_rate": config["sample_rate"], "sampler": "default (euler for rectified_flow)",
                               "cfg_scale": 5.0, "threads": args.threads, "machine": platform.machine(),
                               "torch": torch.__version__, "prompt_encoding_16_uncached_s": uncached_16,
                               "prompt_encoding_16_cached_s": cached_16, "rows": rows}, indent=2))
    print(f"16 prompts: {uncached_16 * 1000:.0f} ms uncached, {cached_16 * 1000:.2f} ms cached; wrote {OUT}")


if __name__ == "__main__":
    main()
