"""Benchmark: training speed of the demo autoencoder config on this CPU.

Measures, for torch.set_num_threads 1 and 2, the wall time of
  - a generator step during warm-up (no discriminator in the loss),
  - a generator step after warm-up (adversarial + feature-matching terms),
  - a discriminator step,
on in-memory batches of demo-note-like audio (decaying harmonic tones), so data loading is not part of
the number (bench_data_loading.py covers that). steps/s is derived for the two phases of a run:
warm-up (alternating warm-up generator / discriminator steps) and after warm-up.

Run: ``.venv/bin/python benchmarks/bench_autoencoder_training.py [--batch-size 16] [--steps 6]``.
Defaults: the model config conf/base/model_configs/autoencoder_demo.json and the batch size of
conf/base/parameters_autoencoder.yml. Writes benchmarks/results/autoencoder_training.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MODEL_CONFIG = REPO / "conf" / "base" / "model_configs" / "autoencoder_demo.json"
PARAMETERS = REPO / "conf" / "base" / "parameters_autoencoder.yml"
OUT = REPO / "benchmarks" / "results" / "autoencoder_training.json"


def demo_batch_size() -> int:
    import yaml

    return int(yaml.safe_load(PARAMETERS.read_text())["autoencoder"]["train"]["batch_size"])


def note_like_batch(batch_size: int, channels: int, sample_size: int, sample_rate: int) -> torch.Tensor:
    """Decaying harmonic tones at random pitches (what the demo notes look like to the model)."""
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(sample_size) / sample_rate
    out = torch.zeros(batch_size, channels, sample_size)
    for b in range(batch_size):
        f0 = 110.0 * 2 ** (torch.rand((), generator=gen).item() * 3)
        tone = sum(0.3 / k * torch.sin(2 * torch.pi * f0 * k * t) for k in range(1, 6))
        out[b] = tone * torch.exp(-3 * t)
    return out


class _StepTimer:
    def __init__(self):
        self.times: list[float] = []

    def attach(self, module):
        timer = self
        original = module.training_step

        def timed(batch, batch_idx):
            start = time.perf_counter()
            out = original(batch, batch_idx)
            timer.times.append(time.perf_counter() - start)
            return out

        module.training_step = timed


def time_steps(config: dict, audio: torch.Tensor, steps: int) -> list[float]:
    """Per-step wall times of ``steps`` training steps (Lightning loop, in-memory batches)."""
    import lightning.pytorch as pl

    from stable_audio_ops.models.factory import create_model_from_config
    from stable_audio_ops.training.factory import create_training_module_from_config

    pl.seed_everything(0)
    module = create_training_module_from_config(config, create_model_from_config(config))
    timer = _StepTimer()
    timer.attach(module)
    batch = (audio, tuple({} for _ in range(audio.shape[0])))
    loader = torch.utils.data.DataLoader([batch] * steps, batch_size=None)
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    return timer.times


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=None, help="default: the demo parameters' batch size")
    parser.add_argument("--steps", type=int, default=6, help="steps timed per phase (the first 2 are warm-up)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    config = json.loads(MODEL_CONFIG.read_text())
    batch_size = args.batch_size or demo_batch_size()
    channels = config.get("audio_channels", 2)
    audio = note_like_batch(batch_size, channels, config["sample_size"], config["sample_rate"])
    during = copy.deepcopy(config)
    during["training"]["warmup_steps"] = 10**9  # warm-up: generator steps without the discriminator
    after = copy.deepcopy(config)
    after["training"]["warmup_steps"] = 0

    results = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        n = args.steps + 2
        warm = time_steps(during, audio, n)[2:]
        full = time_steps(after, audio, n)[2:]
        gen_warm = mean(warm[0::2])
        disc = mean(full[1::2])
        gen_full = mean(full[0::2])
        row = {
            "threads": threads,
            "gen_step_warmup_s": round(gen_warm, 3),
            "gen_step_s": round(gen_full, 3),
            "disc_step_s": round(disc, 3),
            "steps_per_s_warmup": round(2 / (gen_warm + disc), 3),
            "steps_per_s_after_warmup": round(2 / (gen_full + disc), 3),
            "audio_seconds_per_s_after_warmup": round(
                batch_size * config["sample_size"] / config["sample_rate"] * 2 / (gen_full + disc), 2
            ),
        }
        results.append(row)
        print(json.dumps(row))

    report = {
        "benchmark": "autoencoder training step time (demo config)",
        "model_config": str(MODEL_CONFIG.relative_to(REPO)),
        "batch_size": batch_size,
        "sample_size": config["sample_size"],
        "sample_rate": config["sample_rate"],
        "warmup_steps_in_config": config["training"].get("warmup_steps", 0),
        "timed_steps_per_phase": args.steps,
        "torch": torch.__version__,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
        "results": results,
        "note": "in-memory batches; a run with the demo loader adds data loading (num_workers processes)",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
