"""Demo generations during diffusion_uncond training, logged as MLflow artifacts (0.0.20's DiffusionUncondDemoCallback).

Config: ``training.demo`` with upstream's keys ``demo_every`` (2000) and ``demo_steps`` (250); ours:
``num_demos`` (upstream's fixed 8) and ``demo_seed`` (0). Every time a demo fires, ``num_demos`` clips of
``sample_size`` samples are sampled from the SAME seeded noise with the EMA backbone by v-DDIM (upstream's demo
sampler), decoded by the pretransform when there is one, and logged under ``demos/step_<global step>/`` as
``demo.wav`` (clips one after another, 16-bit; scaled down only if they clip) and ``demo_melspec_left.png``
(log spectrogram of the first channel), upstream's names. Fixed noise makes successive demos comparable.

Timing as the diffusion_cond demos: right after the first optimizer step, then whenever
``(global_step - 1) % demo_every == 0``, and once more when training ends. Rank 0 only; a no-op without an MLflow
logger.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.inference.generation import sample_diffusion
from stable_audio_ops.training.demo_schedule import ScheduledDemo
from stable_audio_ops.training.demos import write_demo_audio
from stable_audio_ops.training.diffusion_demos import DEMO_PNG_STYLE

UPSTREAM_NUM_DEMOS = 8


class DiffusionUncondDemoCallback(ScheduledDemo):
    """Generate ``num_demos`` clips every ``demo_every`` steps (module docstring)."""

    temp_prefix = "sao-uncond-demo-"

    def __init__(self, demo_every: int = 2000, demo_steps: int = 250, sample_size: int = 65536,
                 sample_rate: int = 48000, num_demos: int = UPSTREAM_NUM_DEMOS, seed: int = 0):
        super().__init__()
        if demo_every < 1 or num_demos < 1 or demo_steps < 1:
            raise ValueError("demo_every, num_demos and demo_steps must be >= 1")
        self.demo_every = int(demo_every)
        self.demo_steps = int(demo_steps)
        self.sample_size = int(sample_size)
        self.sample_rate = int(sample_rate)
        self.num_demos = int(num_demos)
        self.seed = int(seed)

    @torch.no_grad()
    def generate(self, pl_module) -> torch.Tensor:
        """``[num_demos, channels, samples]`` audio from the EMA backbone (v-DDIM, fixed noise)."""
        wrapper = pl_module.diffusion
        pretransform = wrapper.pretransform
        length = self.sample_size // pretransform.downsampling_ratio if pretransform is not None else self.sample_size
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn(self.num_demos, wrapper.io_channels, length, generator=generator).to(pl_module.device)
        backbone = pl_module.inference_backbone()
        return sample_diffusion(lambda x, t, **_guidance: backbone(x, t), noise, {}, wrapper.diffusion_objective,
                                self.demo_steps, 1.0, pretransform=pretransform, sampler_type="v-ddim",
                                generator=generator).float()

    def write_demo(self, trainer: pl.Trainer, pl_module, folder: Path) -> None:
        fakes = self.generate(pl_module)
        audio = fakes.permute(1, 0, 2).reshape(fakes.shape[1], -1)  # clips one after another
        peak = float(audio.abs().max())
        if peak > 1.0:
            audio = audio / peak
        write_demo_audio(folder / "demo.wav", folder / "demo_melspec_left.png", audio, self.sample_rate,
                         f"generated at step {trainer.global_step}", n_items=fakes.shape[0], **DEMO_PNG_STYLE)


def build_diffusion_uncond_demo_callback(model_config: dict, source: str = "<model config>"
                                         ) -> DiffusionUncondDemoCallback | None:
    """The demo callback that ``training.demo`` describes, or None when there is no ``demo`` block."""
    root = ConfigNode(model_config, source)
    training = root.child("training", {})
    if not training.has("demo"):
        return None
    demo = training.child("demo")
    return DiffusionUncondDemoCallback(
        demo_every=demo.get("demo_every", "a positive int", 2000),
        demo_steps=demo.get("demo_steps", "a positive int", 250),
        sample_size=root.get("sample_size", "a positive int"),
        sample_rate=root.get("sample_rate", "a positive int"),
        num_demos=demo.get("num_demos", "a positive int", UPSTREAM_NUM_DEMOS),
        seed=demo.get("demo_seed", "a non-negative int", 0),
    )


__all__ = ["DiffusionUncondDemoCallback", "build_diffusion_uncond_demo_callback"]
