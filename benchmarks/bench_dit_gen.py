"""Benchmark: the ``dit_gen`` workload of ../shared/bench/dit_bench.json: the step cache and bf16 precision.

Workload (../shared/bench/README.md, timed there against stable-audio-tools 0.0.20): the DiT of
``dit_bench.json`` (256 wide, 6 deep, 4 heads, Oobleck VAE pretransform, ``seconds_start`` /
``seconds_total`` conditioning), ``generate_diffusion_cond(model, steps=50, cfg_scale=6.0,
conditioning=[{"seconds_start": 0, "seconds_total": 4}], batch_size=1, sample_size=65536, seed=123)``,
default sampler, eval mode, ``torch.no_grad()``, 2 torch threads; random weights (speed does not
depend on them).

Two variants in the same process, in alternating rounds (the machine is shared and noisy, so only
ratios measured in one run mean anything): ``cache`` is the code as it is (conditioning-only work
once per generation, :mod:`stable_audio_ops.models.step_cache`), ``no-cache`` the same code with the
cache switched off, i.e. that work redone at every sampler step as before. Both outputs are checked
to be bitwise equal. A third variant, ``bf16``, is the cache plus ``precision="bf16"`` (the backbone under
bfloat16 autocast, a flag because it changes the numbers): its audio's relative RMS error against the
float32 reference is reported. ``--profile`` prints a torch.profiler table of one generation instead.

It first times single sampler steps (the CFG model call) with and without the cache, alternating call
by call (``--pairs``), for the workload's 2 conditioning tokens and for 128 (a T5 prompt's length).

Run: ``.venv/bin/python benchmarks/bench_dit_gen.py [--rounds 3] [--repeats 5] [--threads 2] [--profile]
[--steps-only]``.
Writes benchmarks/results/dit_gen.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO.parent / "shared" / "bench" / "dit_bench.json"
OUT = REPO / "benchmarks" / "results" / "dit_gen.json"
WORKLOAD = dict(steps=50, cfg_scale=6.0, conditioning=[{"seconds_start": 0, "seconds_total": 4}], batch_size=1,
                sample_size=65536, seed=123, progress=False)


@contextlib.contextmanager
def step_cache_off():
    """Generation without the per-generation cache (every step recomputes the conditioning-only work)."""
    from stable_audio_ops.inference import generation

    original = generation._reuse_step_invariants
    generation._reuse_step_invariants = lambda net: contextlib.nullcontext()
    try:
        yield
    finally:
        generation._reuse_step_invariants = original


def build_model() -> torch.nn.Module:
    from stable_audio_ops.models.factory import create_model_from_config

    torch.manual_seed(0)
    model = create_model_from_config(json.loads(CONFIG.read_text()), str(CONFIG))
    return model.eval().requires_grad_(False)


def generate(model: torch.nn.Module, cache: bool, precision: str = "fp32") -> tuple[torch.Tensor, float]:
    from stable_audio_ops.inference.generation import generate_diffusion_cond

    with torch.no_grad(), (contextlib.nullcontext() if cache else step_cache_off()):
        start = time.perf_counter()
        audio = generate_diffusion_cond(model, **WORKLOAD, precision=precision)
        return audio, time.perf_counter() - start


def profile(model: torch.nn.Module, rows: int = 25) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    generate(model, cache=True)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        generate(model, cache=True)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def step_times(model: torch.nn.Module, tokens: int | None, pairs: int) -> dict[str, float]:
    """One sampler step (the CFG model call) with and without the cache, alternating call by call so both
    see the same machine load; ``tokens``: replace the 2 conditioning tokens by that many random ones (a
    prompt's T5 tokens), where the per-layer keys/values the cache keeps are larger."""
    from stable_audio_ops.models.step_cache import StepCache

    dit = model.model.model
    cond = model.get_conditioning_inputs(model.conditioner(WORKLOAD["conditioning"], "cpu"))
    if tokens is not None:
        width = cond["cross_attn_cond"].shape[-1]
        cond["cross_attn_cond"] = torch.randn(1, tokens, width, generator=torch.Generator().manual_seed(0))
    x = torch.randn(1, dit.io_channels, WORKLOAD["sample_size"] // model.pretransform.downsampling_ratio)
    kwargs = {"cross_attn_cond": cond["cross_attn_cond"], "global_embed": cond["global_cond"],
              "cfg_scale": WORKLOAD["cfg_scale"]}
    cache = StepCache()  # one generation's cache, kept across the calls that use it
    ident = threading.get_ident()

    def step(t: torch.Tensor, use_cache: bool) -> float:
        if use_cache:
            dit._step_caches[ident] = cache  # what reuse_step_invariants installs for a generation
        try:
            start = time.perf_counter()
            dit(x, t, **kwargs)
            return time.perf_counter() - start
        finally:
            dit._step_caches.pop(ident, None)

    times: dict[str, list[float]] = {"cache": [], "no-cache": []}
    with torch.no_grad():
        step(torch.tensor([0.5]), True)  # fills the cache (the first step of a generation)
        for i in range(pairs):
            t = torch.tensor([1.0 - (i + 1) / (pairs + 2)])
            for name in (("cache", "no-cache") if i % 2 == 0 else ("no-cache", "cache")):
                times[name].append(step(t, name == "cache"))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--steps-only", action="store_true", help="time single sampler steps only")
    parser.add_argument("--pairs", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model()
    print(f"workload: {CONFIG.name}, generate_diffusion_cond({WORKLOAD}), {args.threads} threads")
    if args.profile:
        profile(model)
        return
    steps = {}
    for tokens in (None, 128):
        steps[str(tokens or "workload")] = medians = step_times(model, tokens, args.pairs)
        print(f"one CFG step, {tokens or 2} conditioning tokens: cache {medians['cache'] * 1000:.1f} ms, no-cache "
              f"{medians['no-cache'] * 1000:.1f} ms, ratio {medians['cache'] / medians['no-cache']:.3f} "
              f"(medians of {args.pairs} alternating calls)")
    if args.steps_only:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps({"config": str(CONFIG), "threads": args.threads, "steps": steps}, indent=2))
        return
    reference, _ = generate(model, cache=False)  # warm-up, and the output the fp32 variants must give
    generate(model, cache=True)
    generate(model, cache=True, precision="bf16")
    variants = ("no-cache", "cache", "bf16")  # bf16: cache + precision="bf16" (backbone under bf16 autocast)
    times: dict[str, list[float]] = {name: [] for name in variants}
    bf16_error = 0.0
    rounds = []
    for r in range(args.rounds):
        medians = {}
        for name in (variants if r % 2 == 0 else variants[::-1]):
            runs = []
            for _ in range(args.repeats):
                audio, seconds = generate(model, cache=name != "no-cache",
                                          precision="bf16" if name == "bf16" else "fp32")
                if name == "bf16":
                    bf16_error = max(bf16_error, float((audio - reference).pow(2).mean().sqrt()
                                                       / reference.pow(2).mean().sqrt()))
                elif not torch.equal(audio, reference):
                    raise SystemExit(f"{name}: output differs from the reference generation")
                runs.append(seconds)
            medians[name] = statistics.median(runs)
            times[name] += runs
        rounds.append(medians)
        print(f"round {r + 1}: " + ", ".join(f"{n} {medians[n]:.3f} s ({medians[n] / medians['no-cache']:.3f})"
                                             for n in variants))
    ratios = [m["cache"] / m["no-cache"] for m in rounds]
    bf16_ratios = [m["bf16"] / m["no-cache"] for m in rounds]
    print(f"median ratio cache / no-cache: {statistics.median(ratios):.3f} (outputs bitwise equal); "
          f"bf16 / no-cache: {statistics.median(bf16_ratios):.3f} (audio relative RMS error {bf16_error:.2e})")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"config": str(CONFIG), "workload": {k: v for k, v in WORKLOAD.items()},
                               "threads": args.threads, "steps": steps, "rounds": rounds, "all_s": times,
                               "median_ratio": statistics.median(ratios),
                               "bf16_median_ratio": statistics.median(bf16_ratios), "bf16_relative_rms_error": bf16_error,
                               "machine": platform.machine(),
                               "torch": torch.__version__}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
