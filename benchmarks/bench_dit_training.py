"""Benchmark: DiT training steps/s of the demo latent diffusion config on this CPU.

Times the full training step of :class:`DiffusionCondTrainingModule` on pre-encoded-like latents
(conditioning through the MiniLM prompt encoder, cached per caption, + seconds_total; t sampling, CFG
dropout, MSE, backward, AdamW step, EMA update), i.e. what ``kedro run --pipeline=latent_diffusion``
spends per step after data loading. torch threads 1 and 2.

Run: ``.venv/bin/python benchmarks/bench_dit_training.py [--batch-size 32] [--steps 8]``. Defaults:
conf/base/model_configs/dit_demo.json with the demo autoencoder as pretransform, the latent length of
``latent_diffusion.pre_encode.sample_size`` and the batch size of conf/base/parameters_latent_diffusion.yml.
Writes benchmarks/results/dit_training.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DIT_CONFIG = REPO / "conf" / "base" / "model_configs" / "dit_demo.json"
AE_CONFIG = REPO / "conf" / "base" / "model_configs" / "autoencoder_demo.json"
PARAMETERS = REPO / "conf" / "base" / "parameters_latent_diffusion.yml"
OUT = REPO / "benchmarks" / "results" / "dit_training.json"
CAPTIONS = [f"a {inst} playing {note}, {dyn}" for inst in ("flute", "grand piano", "violin", "church organ")
            for note in ("C4", "G4") for dyn in ("soft", "loud")]


def demo_model_config() -> tuple[dict, dict]:
    """dit_demo.json with the demo autoencoder as pretransform (what the pipeline's build_model_config does)."""
    import yaml

    params = yaml.safe_load(PARAMETERS.read_text())["latent_diffusion"]
    config = json.loads(DIT_CONFIG.read_text())
    ae = json.loads(AE_CONFIG.read_text())
    config["model"]["pretransform"]["config"] = copy.deepcopy(ae["model"])
    config["model"]["io_channels"] = config["model"]["diffusion"]["config"]["io_channels"] = ae["model"]["latent_dim"]
    config["sample_size"] = int(params["pre_encode"]["sample_size"])
    return config, params


def train_step(module, optimizer, latents: torch.Tensor, metadata: tuple, device: str = "cpu") -> float:
    """One full training step (as DiffusionCondTrainingModule.training_step + optimizer), in seconds
    (on CUDA the clock stops after the device has finished)."""
    from stable_audio_ops.training.timesteps import noise_and_target

    start = time.perf_counter()
    cond = module.diffusion.conditioner(metadata, device)
    x, _ = module.diffusion_input(latents, metadata)
    t = module.timesteps(x.shape[0], x.shape[-1])
    noised, target = noise_and_target(x, t, module.diffusion_objective)
    out = module.diffusion(noised, t, cond=cond, cfg_dropout_prob=module.cfg_dropout_prob)
    loss = torch.mean((out - target) ** 2)
    module.on_before_zero_grad()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    from stable_audio_ops.models.factory import create_model_from_config
    from stable_audio_ops.training.factory import create_training_module_from_config

    config, params = demo_model_config()
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=int(params["train"]["batch_size"]))
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    ratio = config["model"]["pretransform"]["config"]["downsampling_ratio"]
    frames = config["sample_size"] // ratio
    channels = config["model"]["io_channels"]
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        module = create_training_module_from_config(config, create_model_from_config(config))
        module.pre_encoded = True
        optimizer = module.configure_optimizers()[0][0]
        latents = torch.randn(args.batch_size, channels, frames)
        metadata = tuple({"prompt": CAPTIONS[i % len(CAPTIONS)], "seconds_total": 2,
                          "padding_mask": [torch.ones(frames)]} for i in range(args.batch_size))

        train_step(module, optimizer, latents, metadata)  # warm-up (text encoder cache, allocator)
        times = [train_step(module, optimizer, latents, metadata) for _ in range(args.steps)]
        median = statistics.median(times)
        results.append({"threads": threads, "batch_size": args.batch_size, "latent_frames": frames,
                        "tokens": frames // config["model"]["diffusion"]["config"].get("patch_size", 1),
                        "median_s_per_step": median, "steps_per_s": 1 / median,
                        "latent_clips_per_s": args.batch_size / median, "all_s": times})
        print(f"threads={threads} batch={args.batch_size} frames={frames}: {median:.3f} s/step "
              f"= {1 / median:.2f} steps/s = {args.batch_size / median:.1f} clips/s")
    backbone = sum(p.numel() for p in module.diffusion.model.parameters())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"config": str(DIT_CONFIG.relative_to(REPO)), "backbone_params": backbone,
                               "machine": platform.machine(), "torch": torch.__version__,
                               "results": results}, indent=2))
    print(f"backbone {backbone / 1e6:.2f} M parameters; wrote {OUT}")


if __name__ == "__main__":
    main()
