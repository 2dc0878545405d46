"""Demo generations during ``lm`` training, logged as MLflow artifacts (0.0.20's ``AudioLanguageModelDemoCallback``).

Config: ``training.demo`` with upstream's keys ``demo_every`` (2000), ``demo_cfg_scales`` ([1]), ``demo_cond`` (a
list of metadata dicts, one per demo; required for a conditioned model) and ``num_demos`` (8, used when there is no
``demo_cond``); ours: ``demo_seed`` (0). When a demo fires, ``sample_size`` samples are generated per demo and cfg
scale with upstream's sampling (temperature 1, top-p 0.95) from a fixed seed, and logged under
``demos/step_<global step>/`` as ``demo_cfg_<scale>.wav`` (demos one after another, peak-normalised as upstream)
and ``demo_melspec_left_cfg_<scale>.png``, upstream's names.

Differences from 0.0.20: the demos come from the model that is exported (the EMA copy when ``training.use_ema``;
0.0.20 always samples the online model) and from a fixed seed, so successive demos are comparable; timing as the
other demo callbacks (after the first optimizer step, whenever ``(global_step - 1) % demo_every == 0`` and once
when training ends). Rank 0 only; a no-op without an MLflow logger.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.inference.lm_generation import generate_lm
from stable_audio_ops.training.demo_schedule import ScheduledDemo
from stable_audio_ops.training.demos import write_demo_audio
from stable_audio_ops.training.diffusion_demos import DEMO_PNG_STYLE

log = logging.getLogger(__name__)

UPSTREAM_NUM_DEMOS = 8
DEMO_TOP_P = 0.95


class LMDemoCallback(ScheduledDemo):
    """Generate demos every ``demo_every`` steps, one set per cfg scale (module docstring)."""

    temp_prefix = "sao-lm-demo-"

    def __init__(self, demo_every: int = 2000, sample_size: int = 65536, sample_rate: int = 48000,
                 demo_cfg_scales: Sequence[float] = (1.0,), demo_conditioning: Sequence[Mapping[str, Any]] | None = None,
                 num_demos: int = UPSTREAM_NUM_DEMOS, seed: int = 0):
        super().__init__()
        if demo_every < 1 or num_demos < 1 or not demo_cfg_scales:
            raise ValueError("demo_every and num_demos must be >= 1 and demo_cfg_scales non-empty")
        self.demo_every = int(demo_every)
        self.sample_size = int(sample_size)
        self.sample_rate = int(sample_rate)
        self.demo_cfg_scales = [float(s) for s in demo_cfg_scales]
        self.demo_conditioning = list(demo_conditioning) if demo_conditioning else None
        self.num_demos = len(self.demo_conditioning) if self.demo_conditioning else int(num_demos)
        self.seed = int(seed)

    @torch.no_grad()
    def generate(self, pl_module, cfg_scale: float) -> torch.Tensor:
        """``[num_demos, channels, samples]`` audio from the exported model."""
        model = pl_module.inference_model()
        length = max(1, self.sample_size // model.pretransform.downsampling_ratio)
        out = generate_lm(model, max_gen_len=length, batch_size=self.num_demos, conditioning=self.demo_conditioning,
                          cfg_scale=cfg_scale, temperature=1.0, top_p=DEMO_TOP_P, seed=self.seed)
        return out.audio.float()

    def write_demo(self, trainer: pl.Trainer, pl_module, folder: Path) -> None:
        for scale in self.demo_cfg_scales:
            fakes = self.generate(pl_module, scale)
            audio = fakes.permute(1, 0, 2).reshape(fakes.shape[1], -1)  # demos one after another
            audio = audio / audio.abs().max().clamp(min=1e-8)  # upstream normalises every demo
            name = f"{scale:g}"
            write_demo_audio(folder / f"demo_cfg_{name}.wav", folder / f"demo_melspec_left_cfg_{name}.png",
                             audio, self.sample_rate, f"generated at step {trainer.global_step}, cfg {name}",
                             n_items=fakes.shape[0], **DEMO_PNG_STYLE)


def build_lm_demo_callback(model_config: dict, source: str = "<model config>") -> LMDemoCallback | None:
    """The demo callback that ``training.demo`` describes; None without a ``demo`` block, or (with a warning) for a
    conditioned model without ``demo_cond``."""
    root = ConfigNode(model_config, source)
    training = root.child("training", {})
    if not training.has("demo"):
        return None
    demo = training.child("demo")
    demo_cond = demo.get("demo_cond", "a list of objects", None)
    lm = root.child("model").child("lm", {})
    conditioned = any(lm.get(key, "a list of strings", []) for key in
                      ("cross_attention_cond_ids", "prepend_cond_ids", "global_cond_ids"))
    if conditioned and not demo_cond:
        log.warning("%s: training.demo.demo_cond is not set; a conditioned lm model logs no demos without it",
                    source)
        return None
    return LMDemoCallback(
        demo_every=demo.get("demo_every", "a positive int", 2000),
        sample_size=root.get("sample_size", "a positive int"),
        sample_rate=root.get("sample_rate", "a positive int"),
        demo_cfg_scales=demo.get("demo_cfg_scales", "a list of numbers", [1]),
        demo_conditioning=demo_cond,
        num_demos=demo.get("num_demos", "a positive int", UPSTREAM_NUM_DEMOS),
        seed=demo.get("demo_seed", "a non-negative int", 0),
    )


__all__ = ["LMDemoCallback", "build_lm_demo_callback"]
