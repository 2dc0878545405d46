"""Demo generations during diffusion_cond(_inpaint) training, logged as MLflow artifacts.

Config: ``training.demo`` with upstream's keys: ``demo_every`` (2000), ``demo_steps`` (250),
``num_demos`` and ``demo_cfg_scales`` (both required, as upstream; a missing one is a ConfigError
naming the key instead of a KeyError mid-training), ``demo_cond`` (list of metadata dicts, one per
demo; shorter lists are cycled, longer ones cut), ``demo_cond_from_batch`` (use the current training
batch's metadata instead). Ours: ``demo_sampler_type`` (default: v -> ``v-ddim`` as upstream's demos,
rectified_flow -> ``euler``, rf_denoiser -> ``pingpong``) and ``demo_seed`` (0).

Every time a demo fires, for each cfg scale it generates ``num_demos`` clips of ``sample_size``
samples from the SAME seeded noise with the EMA backbone (the online conditioner and pretransform),
and logs under ``demos/step_<global step>/``: ``demo_cfg_<scale>.wav`` (clips one after another,
16-bit; scaled down only if they clip, so loudness stays comparable between steps),
``demo_melspec_left_cfg_<scale>.png`` (log spectrogram of the first channel) and
``demo_conditioning.json``. Fixed noise makes successive demos directly comparable.

Timing as upstream: right after the first optimizer step, then whenever
``(global_step - 1) % demo_every == 0``; one more when training ends (unless the last step just had
one). Rank 0 only; a no-op without an MLflow logger. Inpainting models get all-zero inpaint masks
(plain generation from the conditioning).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.inference.generation import sample_diffusion
from stable_audio_ops.sampling.samplers import get_sampler
from stable_audio_ops.training.demo_schedule import ScheduledDemo
from stable_audio_ops.training.demos import clip_label, write_demo_audio
from stable_audio_ops.training.spectrogram import write_spectrogram_png
from stable_audio_ops.utils.jsonable import to_jsonable

DEMO_SAMPLERS = {"v": "v-ddim", "rectified_flow": "euler", "rf_denoiser": "pingpong"}


# Demo clips follow one another: equal thin separators, unlike the real/reconstruction pairs.
DEMO_PNG_STYLE: dict[str, Any] = {"xlabel": "time (s): demo 1, demo 2, ...", "line_widths": (0.5, 0.5)}


def write_demo_spectrogram(path: Path, audio: torch.Tensor, sample_rate: int, title: str, n_items: int) -> None:
    """Log-magnitude spectrogram of ``audio[0]`` with thin lines between the ``n_items`` clips."""
    write_spectrogram_png(path, audio, sample_rate, title, n_items, **DEMO_PNG_STYLE)


def _cycle(conds: Sequence[dict], n: int) -> list[dict]:
    return [dict(conds[i % len(conds)]) for i in range(n)]


class DiffusionCondDemoCallback(ScheduledDemo):
    """Generate ``demo_cond`` at each of ``demo_cfg_scales`` every ``demo_every`` steps (module docstring)."""

    temp_prefix = "sao-diffusion-demo-"

    def __init__(self, demo_every: int = 2000, num_demos: int = 8, sample_size: int = 65536, demo_steps: int = 250,
                 sample_rate: int = 48000, demo_cond: Sequence[dict] | None = None,
                 demo_cfg_scales: Sequence[float] = (3, 5, 7), demo_cond_from_batch: bool = False,
                 sampler_type: str | None = None, seed: int = 0):
        super().__init__()
        if demo_every < 1 or num_demos < 1 or demo_steps < 1:
            raise ValueError("demo_every, num_demos and demo_steps must be >= 1")
        if not demo_cond_from_batch and not demo_cond:
            raise ValueError("demo_cond must hold at least one metadata dict (or set demo_cond_from_batch)")
        self.demo_every = int(demo_every)
        self.num_demos = int(num_demos)
        self.sample_size = int(sample_size)
        self.demo_steps = int(demo_steps)
        self.sample_rate = int(sample_rate)
        self.demo_cond = _cycle(list(demo_cond or [{}]), self.num_demos)
        self.demo_cfg_scales = [float(s) for s in demo_cfg_scales]
        self.demo_cond_from_batch = bool(demo_cond_from_batch)
        self.sampler_type = sampler_type
        self.seed = int(seed)
        self._batch_cond: list[dict] | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.demo_cond_from_batch:
            self._batch_cond = [dict(md) for md in list(batch[1])[: self.num_demos]]
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def conditioning(self) -> list[dict]:
        if self.demo_cond_from_batch and self._batch_cond:
            return _cycle(self._batch_cond, self.num_demos)
        return self.demo_cond

    @torch.no_grad()
    def generate(self, pl_module, cfg_scale: float, conditioning: list[dict]) -> torch.Tensor:
        """``[num_demos, channels, samples]`` audio from the EMA backbone at ``cfg_scale``."""
        wrapper = pl_module.diffusion
        device = pl_module.device
        pretransform = wrapper.pretransform
        length = self.sample_size // pretransform.downsampling_ratio if pretransform is not None else self.sample_size
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn(self.num_demos, wrapper.io_channels, length, generator=generator).to(device)
        tensors = wrapper.conditioner(conditioning, device) if wrapper.conditioner is not None else {}
        if "inpaint_mask" in wrapper.input_concat_ids:
            tensors = {**tensors, "inpaint_mask": [torch.zeros(self.num_demos, 1, length, device=device)],
                       "inpaint_masked_input": [torch.zeros_like(noise)]}
        cond_inputs = wrapper.get_conditioning_inputs(tensors)
        sampler = self.sampler_type or DEMO_SAMPLERS.get(wrapper.diffusion_objective)
        return sample_diffusion(pl_module.inference_backbone(), noise, cond_inputs, wrapper.diffusion_objective,
                                self.demo_steps, cfg_scale, pretransform=pretransform,
                                dist_shift=wrapper.sampling_dist_shift, sampler_type=sampler,
                                generator=generator).float()

    def write_demo(self, trainer: pl.Trainer, pl_module, folder: Path) -> None:
        conditioning = self.conditioning()
        (folder / "demo_conditioning.json").write_text(json.dumps(to_jsonable(conditioning), indent=2))
        for scale in self.demo_cfg_scales:
            fakes = self.generate(pl_module, scale, conditioning)
            audio = fakes.permute(1, 0, 2).reshape(fakes.shape[1], -1)  # clips one after another
            peak = float(audio.abs().max())
            if peak > 1.0:
                audio = audio / peak
            label = f"{scale:g}"
            write_demo_audio(folder / f"demo_cfg_{label}.wav", folder / f"demo_melspec_left_cfg_{label}.png",
                             audio, self.sample_rate, f"generated at step {trainer.global_step}, cfg {label}",
                             n_items=fakes.shape[0], item_labels=[clip_label(md) for md in conditioning],
                             **DEMO_PNG_STYLE)


def build_diffusion_cond_demo_callback(model_config: dict, source: str = "<model config>"
                                       ) -> DiffusionCondDemoCallback | None:
    """The demo callback that ``training.demo`` describes, or None when there is no ``demo`` block."""
    training = ConfigNode(model_config, source).child("training", {})
    if not training.has("demo"):
        return None
    demo = training.child("demo")
    from_batch = demo.get("demo_cond_from_batch", "a bool", False)
    demo_cond = demo.get("demo_cond", "a list of objects", None)
    if not from_batch and not demo_cond:
        raise demo.error("missing required key (expected a list of metadata dicts, one per demo; or set "
                         "demo_cond_from_batch)", "demo_cond")
    sampler = demo.get("demo_sampler_type", "a string", None)
    if sampler is not None:
        objective = ConfigNode(model_config, source).child("model").child("diffusion").get(
            "diffusion_objective", "a string", "v")
        try:
            get_sampler(objective, sampler)
        except ValueError as exc:
            raise demo.error(str(exc), "demo_sampler_type") from exc
    return DiffusionCondDemoCallback(
        demo_every=demo.get("demo_every", "a positive int", 2000),
        num_demos=demo.get("num_demos", "a positive int"),
        sample_size=ConfigNode(model_config, source).get("sample_size", "a positive int"),
        demo_steps=demo.get("demo_steps", "a positive int", 250),
        sample_rate=ConfigNode(model_config, source).get("sample_rate", "a positive int"),
        demo_cond=demo_cond,
        demo_cfg_scales=demo.get("demo_cfg_scales", "a list of numbers"),
        demo_cond_from_batch=from_batch,
        sampler_type=sampler,
        seed=demo.get("demo_seed", "a non-negative int", 0),
    )
