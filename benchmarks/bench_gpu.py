"""GPU benchmark, prepared to run in a few minutes on one CUDA device: full-size generation and demo training.

Workloads (random weights: speed does not depend on them):

- ``sao_generation``: a Stable Audio Open 1.0-size model (``../shared/bench/sao_open_1_0.json``: 1.21 B
  parameters, T5-base prompt encoder, Oobleck VAE) generates its full 47 s of 44.1 kHz stereo with 100 steps
  of ``dpmpp-3m-sde`` (the model card's sampler), CFG 7, batch 1, under bf16 autocast (``--precision fp32``
  for full precision). One short warm-up generation first (kernels, allocator, conditioner cache), then the
  median of ``--repeats`` timed generations; prompt encoding, sampling and VAE decoding all included.
  Published anchors: SAO 1.0, 47 s in 8.6 s on an A40 (Evans et al. 2024).
- ``demo_training``: steps/s of the demo recipes (conf/base): the autoencoder (Oobleck VAE of
  ``autoencoder_demo.json``, batch 8 x 8192 samples, its multi-resolution STFT loss + KL, AdamW) and the
  DiT (``dit_demo.json`` over pre-encoded latents, batch of ``parameters_latent_diffusion.yml``), one full
  step each (forward, loss, backward, optimizer).

The T5 encoder is a random t5-base-shaped one written to a temporary folder (nothing downloads).

Run on the GPU machine::

    .venv/bin/python benchmarks/bench_gpu.py                  # cuda, the full workloads
    .venv/bin/python benchmarks/bench_gpu.py --device cpu --seconds 1 --steps 2 --repeats 1 --train-steps 2

(the second line checks the script on a CPU in about a minute). Writes benchmarks/results/gpu.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dit_training import CAPTIONS, REPO, demo_model_config, train_step  # noqa: E402
from bench_full_size_loading import bench_config, write_t5  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "gpu.json"
AE_CONFIG = REPO / "conf" / "base" / "model_configs" / "autoencoder_demo.json"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (to check the script)")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32"], help="generation precision")
    p.add_argument("--seconds", type=float, default=47.0, help="generated length (SAO 1.0's maximum: 47)")
    p.add_argument("--steps", type=int, default=100, help="sampler steps per generation")
    p.add_argument("--sampler", default="dpmpp-3m-sde")
    p.add_argument("--repeats", type=int, default=3, help="timed generations (median reported)")
    p.add_argument("--train-steps", type=int, default=20, help="timed training steps per demo model")
    p.add_argument("--skip", nargs="*", default=[], choices=["sao_generation", "demo_training"])
    return p.parse_args()


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def sao_generation(a: argparse.Namespace) -> dict:
    """Median wall time of one full-length generation of the SAO 1.0-size model."""
    from stable_audio_ops.inference.generation import generate_diffusion_cond
    from stable_audio_ops.models.factory import create_model_from_config

    with tempfile.TemporaryDirectory() as workdir:
        config = bench_config(Path(workdir))
        write_t5(Path(workdir) / "t5")
        torch.manual_seed(0)
        model = create_model_from_config(config).to(a.device).eval()
    rate = config["sample_rate"]
    sample_size = int(a.seconds * rate)
    conditioning = [{"prompt": "128 BPM tech house drum loop", "seconds_start": 0, "seconds_total": a.seconds}]

    def generate(steps: int) -> float:
        synchronize(a.device)
        start = time.perf_counter()
        with torch.no_grad(), autocast(a.device, a.precision):
            audio = generate_diffusion_cond(model, steps=steps, cfg_scale=7.0, conditioning=conditioning,
                                            sample_size=sample_size, seed=0, device=a.device,
                                            sampler_type=a.sampler, progress=False)
        synchronize(a.device)
        if not torch.isfinite(audio).all():
            raise RuntimeError("non-finite audio: the timing would not be of a usable generation")
        return time.perf_counter() - start

    generate(2)  # warm-up
    times = [generate(a.steps) for _ in range(a.repeats)]
    median = statistics.median(times)
    params = sum(p.numel() for p in model.parameters())
    result = {"params": params, "seconds_of_audio": a.seconds, "steps": a.steps, "sampler": a.sampler,
              "precision": a.precision, "median_s": median, "all_s": times,
              "realtime_factor": a.seconds / median,
              "peak_gpu_memory_gb": (torch.cuda.max_memory_allocated() / 1e9 if a.device.startswith("cuda")
                                     else None)}
    print(f"sao_generation: {a.seconds:g} s stereo, {a.steps} steps {a.sampler}, {a.precision}: "
          f"{median:.2f} s (x{a.seconds / median:.1f} real time)")
    return result


def autoencoder_steps_per_s(a: argparse.Namespace) -> float:
    """Full training steps/s of the demo autoencoder (reconstruction phase: MRSTFT + KL, AdamW)."""
    from stable_audio_ops.losses.spectral import MultiResolutionSTFTLoss
    from stable_audio_ops.models.factory import create_model_from_config

    config = json.loads(AE_CONFIG.read_text())
    torch.manual_seed(0)
    model = create_model_from_config(config).to(a.device).train()
    ffts = [1024, 512, 256, 128, 64]
    loss_fn = MultiResolutionSTFTLoss(sample_rate=config["sample_rate"], fft_sizes=ffts,
                                      hop_sizes=[f // 4 for f in ffts], win_lengths=ffts,
                                      perceptual_weighting=True).to(a.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.99), weight_decay=1e-3)
    x = 0.1 * torch.randn(8, 1, config["sample_size"], device=a.device)

    def step() -> float:
        synchronize(a.device)
        start = time.perf_counter()
        latents, info = model.encode(x, return_info=True)
        loss = loss_fn(model.decode(latents), x) + 1e-4 * info["kl"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        synchronize(a.device)
        return time.perf_counter() - start

    step()
    return 1 / statistics.median(step() for _ in range(a.train_steps))


def dit_steps_per_s(a: argparse.Namespace) -> tuple[float, int]:
    """Full training steps/s of the demo DiT on pre-encoded latents, and its batch size."""
    from stable_audio_ops.models.factory import create_model_from_config
    from stable_audio_ops.training.factory import create_training_module_from_config

    config, params = demo_model_config()
    batch_size = int(params["train"]["batch_size"])
    frames = config["sample_size"] // config["model"]["pretransform"]["config"]["downsampling_ratio"]
    torch.manual_seed(0)
    module = create_training_module_from_config(config, create_model_from_config(config)).to(a.device)
    module.pre_encoded = True
    optimizer = module.configure_optimizers()[0][0]
    latents = torch.randn(batch_size, config["model"]["io_channels"], frames, device=a.device)
    metadata = tuple({"prompt": CAPTIONS[i % len(CAPTIONS)], "seconds_total": 2,
                      "padding_mask": [torch.ones(frames, device=a.device)]} for i in range(batch_size))
    train_step(module, optimizer, latents, metadata, a.device)
    return 1 / statistics.median(train_step(module, optimizer, latents, metadata, a.device)
                                 for _ in range(a.train_steps)), batch_size


def main() -> None:
    a = parse_args()
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here (use --device cpu to check the script)")
    results: dict = {"device": torch.cuda.get_device_name(a.device) if a.device.startswith("cuda")
                     else platform.processor() or platform.machine(), "torch": torch.__version__}
    if "sao_generation" not in a.skip:
        results["sao_generation"] = sao_generation(a)
    if "demo_training" not in a.skip:
        ae = autoencoder_steps_per_s(a)
        dit, dit_batch = dit_steps_per_s(a)
        results["demo_training"] = {"autoencoder_steps_per_s": ae, "autoencoder_batch": 8,
                                    "dit_steps_per_s": dit, "dit_batch": dit_batch}
        print(f"demo_training: autoencoder {ae:.1f} steps/s (batch 8), DiT {dit:.1f} steps/s (batch {dit_batch})")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
