"""Benchmark: one fine-tuning step of a Stable Audio Open 1.0-size model on this CPU, LoRA (with and without
gradient checkpointing) and, on request, full fine-tuning: seconds per step, peak RSS, trainable parameters.

Workload: ``../shared/bench/sao_open_1_0.json`` (1.21 B parameters) with random weights and a random
t5-base-shaped local T5 (as bench_full_size_loading.py writes it), batch 1 of 10 s of stereo 44.1 kHz audio as
the fine_tune pipeline trains it: pre-encoded latents (64 x 216 frames, the pretransform does not run in the
step), the prompt through T5, ``seconds_start`` / ``seconds_total``. The step is the training module's own
pieces: ``create_training_module_from_config`` (LoRA applied, base frozen), ``configure_optimizers`` (AdamW
over the trainable parameters only), conditioning, noise, forward, MSE, backward, optimizer step. Each mode runs
in a fresh subprocess (``VmHWM`` = its own peak RSS); step 1 warms up, step 2 is timed. ``full`` keeps fp32
AdamW moments for every DiT parameter (about 17.5 GB before activations: run it only on a machine with room);
``full_8bit_ckpt`` is full fine-tuning with bitsandbytes' AdamW8bit and gradient checkpointing.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fine_tune_step.py [--modes lora lora_ckpt full]``.
Writes benchmarks/results/fine_tune_step.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SAO_CONFIG = REPO.parent / "shared" / "bench" / "sao_open_1_0.json"
OUT = REPO / "benchmarks" / "results" / "fine_tune_step.json"
LATENT_FRAMES = 216  # 10.03 s at 44.1 kHz with the 2048x downsampling VAE
LORA = {"rank": 16, "alpha": 16, "targets": ["self_attn", "cross_attn", "ff"]}
ADAMW_8BIT = {"diffusion": {"optimizer": {"type": "AdamW8bit", "config": {"lr": 1e-4}}}}  # needs bitsandbytes
MODES = {"lora": {"lora": LORA}, "lora_ckpt": {"lora": LORA, "gradient_checkpointing": True}, "full": {},
         "full_8bit_ckpt": {"gradient_checkpointing": True, "optimizer_configs": ADAMW_8BIT}}
GIB = 2 ** 30


def own_peak_rss() -> int:
    """Peak resident bytes of this process alone (``VmHWM`` restarts at exec, unlike ``ru_maxrss``)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024


def save_random_t5(folder: Path) -> None:
    """t5-base dimensions with random weights and the offline MiniLM tokenizer: the same cost per step as the
    real T5 for timing and memory (nothing is downloaded)."""
    import transformers

    from stable_audio_ops.models.conditioners import default_text_encoder_path

    shape = transformers.T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
    transformers.T5EncoderModel(shape).save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(default_text_encoder_path()).save_pretrained(folder)


def step_config(workdir: Path, mode: str) -> dict:
    config = json.loads(SAO_CONFIG.read_text())
    for conditioner in config["model"]["conditioning"]["configs"]:
        if conditioner["type"] == "t5":
            conditioner["config"]["model_path"] = str(workdir / "t5")
    config["sample_size"] = LATENT_FRAMES * 2048
    config["training"] = {"use_ema": False, "pre_encoded": True, "cfg_dropout_prob": 0.1,
                          "optimizer_configs": {"diffusion": {"optimizer": {"type": "AdamW", "config": {"lr": 1e-4}}}},
                          **copy.deepcopy(MODES[mode])}  # a mode's optimizer_configs replace the AdamW default
    return config


def run_mode(workdir: Path, mode: str) -> dict:
    """In this (fresh) process: build, two steps, report."""
    from stable_audio_ops.models.factory import create_model_from_config
    from stable_audio_ops.models.lora import count_parameters
    from stable_audio_ops.training.factory import create_training_module_from_config
    from stable_audio_ops.training.timesteps import noise_and_target

    torch.manual_seed(0)
    config = step_config(workdir, mode)
    start = time.perf_counter()
    model = create_model_from_config(copy.deepcopy(config))
    module = create_training_module_from_config(config, model)
    build_s = time.perf_counter() - start
    optimizer = module.configure_optimizers()[0]
    trainable, total = count_parameters(model)
    model.train()
    meta = [{"prompt": "a warm analog synth pad", "seconds_start": 0, "seconds_total": 10}]
    latents = torch.randn(1, 64, LATENT_FRAMES)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        cond = model.conditioner(meta, "cpu")
        t = torch.rand(1)
        noised, targets = noise_and_target(latents, t, model.diffusion_objective)
        loss = torch.nn.functional.mse_loss(model(noised, t, cond=cond, cfg_dropout_prob=0.1), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return {"mode": mode, "trainable_params": trainable, "total_params": total, "build_s": round(build_s, 1),
            "step_s": [round(s, 1) for s in times], "peak_rss_gib": round(own_peak_rss() / GIB, 2),
            "threads": torch.get_num_threads(), "loss_finite": bool(torch.isfinite(loss))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["lora", "lora_ckpt"], choices=sorted(MODES))
    parser.add_argument("--child", nargs=2, metavar=("WORKDIR", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_mode(Path(args.child[0]), args.child[1])))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="sao-ft-bench-") as tmp:
        save_random_t5(Path(tmp) / "t5")
        for mode in args.modes:
            proc = subprocess.run([sys.executable, __file__, "--child", tmp, mode], capture_output=True, text=True)
            if proc.returncode != 0:
                results.append({"mode": mode, "error": proc.stderr[-2000:], "returncode": proc.returncode})
            else:
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": platform.platform(), "torch": torch.__version__, "results": results},
                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
