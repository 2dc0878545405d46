"""Benchmark: the ``ae_step`` workload of ../shared/bench/ae_bench.json: checkpointing and compiled Snake.

Workload (../shared/bench/README.md, timed there against stable-audio-tools 0.0.20): the Oobleck VAE of
``ae_bench.json`` (32 channels, c_mults [1,2,4,8], strides [2,4,4,8], Snake, mono 16 kHz) in training
mode: ``model.encode(x)`` -> ``model.decode(z)`` -> L1 to ``x`` -> backward -> SGD step, batch 4 x 16384
samples of seeded noise x 0.1, 2 torch threads.

Variants, same weights, alternating rounds in one process (the machine is shared: compare the ratios):
``eager`` (the default; upstream's code path and numbers bitwise: residual units under gradient
checkpointing, eager Snake), ``no-ckpt`` (``training.gradient_checkpointing: false``: activations kept,
same gradients) and ``no-ckpt+compiled`` (also ``training.compile_snake: true`` / ``SAO_COMPILE_SNAKE=1``:
``torch.compile`` of the Snake activation, see stable_audio_ops.models.blocks). The compiled variant's
deviation from eager (decoded output, gradients) is measured on one step from identical states.
``--profile`` prints a torch.profiler table of one eager step instead.

Run: ``.venv/bin/python benchmarks/bench_ae_step.py [--threads 2] [--rounds 3] [--repeats 5] [--profile]``.
Writes benchmarks/results/ae_step.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO.parent / "shared" / "bench" / "ae_bench.json"
OUT = REPO / "benchmarks" / "results" / "ae_step.json"


def build() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    from stable_audio_ops.models.factory import create_model_from_config

    torch.manual_seed(0)
    model = create_model_from_config(json.loads(CONFIG.read_text()), str(CONFIG)).train()
    return model, torch.optim.SGD(model.parameters(), lr=1e-4)


def batch() -> torch.Tensor:
    return torch.randn(4, 1, 16384, generator=torch.Generator().manual_seed(0)) * 0.1


VARIANTS = {"eager": (True, False), "no-ckpt": (False, False), "no-ckpt+compiled": (False, True)}


def step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, compiled: bool,
         checkpointing: bool = True) -> float:
    from stable_audio_ops.models.blocks import use_compiled_snake
    from stable_audio_ops.models.oobleck import set_residual_checkpointing

    use_compiled_snake(compiled)
    set_residual_checkpointing(model, checkpointing)
    start = time.perf_counter()
    loss = (model.decode(model.encode(x)) - x).abs().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def deviation(x: torch.Tensor) -> dict[str, float]:
    """Compiled vs eager from the same weights and VAE noise: max |output diff| and max relative gradient diff."""
    from stable_audio_ops.models.blocks import use_compiled_snake

    results = {}
    for compiled in (False, True):
        use_compiled_snake(compiled)
        model, _ = build()
        torch.manual_seed(1)
        out = model.decode(model.encode(x))
        (out - x).abs().mean().backward()
        results[compiled] = (out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    (eager_out, eager_grads), (comp_out, comp_grads) = results[False], results[True]
    grad_rel = max(float((comp_grads[k] - g).abs().max() / g.abs().max().clamp_min(1e-30))
                   for k, g in eager_grads.items())
    return {"output_max_abs": float((comp_out - eager_out).abs().max()), "grad_max_rel": grad_rel}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = batch()
    print(f"workload: {CONFIG.name}, encode -> decode -> L1 -> backward -> SGD, batch 4 x 16384, "
          f"{args.threads} threads")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        model, opt = build()
        step(model, opt, x, compiled=False)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step(model, opt, x, compiled=False)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        return
    start = time.perf_counter()
    error = deviation(x)  # also compiles the Snake kernels once
    print(f"compiled vs eager: output max |diff| {error['output_max_abs']:.2e}, gradients max rel diff "
          f"{error['grad_max_rel']:.2e} (parity tolerance 1e-4); first compiled use {time.perf_counter() - start:.1f} s")
    states = {name: build() for name in VARIANTS}

    def timed(name: str) -> float:
        model, opt = states[name]
        checkpointing, compiled = VARIANTS[name]
        return step(model, opt, x, compiled=compiled, checkpointing=checkpointing)

    for name in states:
        timed(name)  # warm-up
    rounds = []
    for r in range(args.rounds):
        medians = {}
        for name in (list(VARIANTS) if r % 2 == 0 else list(VARIANTS)[::-1]):
            medians[name] = statistics.median(timed(name) for _ in range(args.repeats))
        rounds.append(medians)
        print(f"round {r + 1}: " + ", ".join(f"{n} {t:.3f} s ({t / medians['eager']:.3f})"
                                             for n, t in medians.items()))
    ratios = {name: statistics.median(m[name] / m["eager"] for m in rounds) for name in VARIANTS}
    print("median ratios to eager: " + ", ".join(f"{n} {r:.3f}" for n, r in ratios.items()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"config": str(CONFIG), "threads": args.threads, "rounds": rounds,
                               "median_ratios": ratios, "deviation": error, "machine": platform.machine(),
                               "torch": torch.__version__}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
