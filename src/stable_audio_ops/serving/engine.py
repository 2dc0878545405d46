"""The model side of the server: request fields -> conditioning, batched generation, audio encoding.

Kept apart from the HTTP layer so the batching key, the per-item seeding and the encoding can be
tested and benchmarked without FastAPI.

Reproducibility under batching: every item gets its own initial noise, drawn from a CPU generator
seeded with that item's seed (``seed + i`` for the i-th variation of a request), and handed to
``generate_diffusion_cond(noise=...)``. A request therefore gets the same audio whether it ran alone
or shared a call with strangers (up to float rounding of batched matmuls). Stochastic samplers also
draw noise during sampling from one generator per call, so requests using them only share a call
with their own variations.
"""

from __future__ import annotations

import io
import math
import secrets
import zipfile
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf
import torch

from stable_audio_ops.inference.entry import generate
from stable_audio_ops.sampling.samplers import DEFAULT_SAMPLER, SAMPLERS
from stable_audio_ops.serving.model_loader import LoadedModel
from stable_audio_ops.serving.progress import StepProgress
from stable_audio_ops.serving.settings import ServeSettings
from stable_audio_ops.tracking.model_card import demo_prompts, demo_steps

FORMATS = {"wav": ("WAV", "PCM_16", "audio/wav"), "flac": ("FLAC", "PCM_16", "audio/flac")}
SEED_LIMIT = 2**32  # seeds are 0 .. 2**32 - 1; variation i of a request uses (seed + i) mod 2**32
# Request fields that feed conditioners with these ids (a model may also take them via default_keys).
FIELD_KEYS = ("prompt", "seconds_start", "seconds_total")


@dataclass(frozen=True)
class GenerationSpec:
    """One validated request: everything needed to generate it, with the seed already resolved."""

    prompt: str
    negative_prompt: str
    seconds_total: float
    steps: int
    cfg_scale: float
    seed: int
    sampler: str
    batch_size: int
    format: str
    sample_size: int  # generated length in samples (a multiple of the model's min_input_length)
    num_samples: int  # returned length in samples (seconds_total * sample_rate)
    conditioning: dict[str, Any] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(8))  # identity for non-shareable calls
    # sampler steps done, written by the model thread (see serving.progress); not part of the request's identity
    progress: StepProgress = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.progress is None:
            object.__setattr__(self, "progress", StepProgress(self.steps))

    @property
    def seeds(self) -> list[int]:
        return [(self.seed + i) % SEED_LIMIT for i in range(self.batch_size)]


@dataclass
class GenerationResult:
    audio: list[bytes]  # one encoded file per variation
    seeds: list[int]
    media_type: str
    format: str
    sample_rate: int
    num_samples: int
    channels: int

    def zip_bytes(self) -> bytes:
        """All variations in one zip (for requests with batch_size > 1)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for i, (data, seed) in enumerate(zip(self.audio, self.seeds, strict=True)):
                archive.writestr(f"sample_{i}_seed{seed}.{self.format}", data)
        return buffer.getvalue()


def encode_audio(audio: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """``[channels, samples]`` float audio -> 16-bit WAV or FLAC bytes (clipped to [-1, 1])."""
    container, subtype, _ = FORMATS[fmt]
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0).T, sample_rate, format=container, subtype=subtype)
    return buffer.getvalue()


class Engine:
    """Wraps a loaded diffusion model with the server's limits; ``run_batch`` runs in the worker thread."""

    def __init__(self, loaded: LoadedModel, settings: ServeSettings):
        self.loaded = loaded
        self.settings = settings
        self.model = loaded.model
        self.device = loaded.device
        self.sample_rate = int(self.model.sample_rate)
        pretransform = getattr(self.model, "pretransform", None)
        self.channels = int(pretransform.io_channels if pretransform is not None else self.model.io_channels)
        self.min_input_length = int(getattr(self.model, "min_input_length", 1) or 1)
        conditioner = getattr(self.model, "conditioner", None)
        self.cond_ids: list[str] = list(conditioner.conditioners.keys()) if conditioner is not None else []
        self.default_keys: dict[str, str] = dict(getattr(conditioner, "default_keys", {}) or {})
        self.objective = str(self.model.diffusion_objective)
        self.samplers: dict[str, Any] = SAMPLERS[self.objective]
        self.default_sampler = DEFAULT_SAMPLER[self.objective]
        self.max_seconds = self._max_seconds()
        if settings.torch_threads is not None:
            torch.set_num_threads(settings.torch_threads)
        # fp32 passes nothing, so generate functions without the option (none today) keep working
        self._precision = {} if settings.precision == "fp32" else {"precision": settings.precision}

    # --- what the model accepts --------------------------------------------------------------------

    def _metadata_key(self, cond_id: str) -> str:
        return cond_id if cond_id in FIELD_KEYS else self.default_keys.get(cond_id, cond_id)

    @property
    def text_conditioned(self) -> bool:
        """True when a conditioner reads the ``prompt`` field."""
        return any(self._metadata_key(c) == "prompt" for c in self.cond_ids)

    @property
    def extra_conditioning_ids(self) -> list[str]:
        """Conditioner inputs no request field covers: requests must send them in ``conditioning``."""
        return [self._metadata_key(c) for c in self.cond_ids if self._metadata_key(c) not in FIELD_KEYS]

    def _max_seconds(self) -> float:
        limit = float(self.settings.max_seconds)
        conditioner = getattr(self.model, "conditioner", None)
        seconds_total = conditioner.conditioners["seconds_total"] if "seconds_total" in self.cond_ids else None
        if seconds_total is not None and hasattr(seconds_total, "max_val"):
            limit = min(limit, float(seconds_total.max_val))  # beyond it the conditioner clamps: no longer audio
        if self.settings.fixed_length:
            limit = min(limit, self.fixed_sample_size / self.sample_rate)
        return limit

    @property
    def fixed_sample_size(self) -> int:
        return int(self.loaded.config.get("sample_size", 0))

    @property
    def default_seconds(self) -> float:
        """The length the model was trained on (``sample_size / sample_rate``), within the server's limit: what
        a request without ``seconds_total`` gets (a model trained on 1.5 s clips says little beyond them)."""
        trained = self.fixed_sample_size / self.sample_rate if self.fixed_sample_size else self.max_seconds
        return min(trained, self.max_seconds)

    def example_prompts(self) -> list[str]:
        """The prompts of the model config's demo conditioning (``training.demo.demo_cond``): captions in the
        style the model was trained on, shown as examples by the web page; empty when the config has none."""
        return demo_prompts(self.loaded.config)

    def demo_steps(self) -> int | None:
        """The step count of the model's training demos (``training.demo.demo_steps``), None when not set."""
        return demo_steps(self.loaded.config)

    def sample_size_for(self, seconds: float) -> int:
        """Generated length: the model's own ``sample_size`` in fixed-length mode, else ``seconds`` rounded up
        to a multiple of ``min_input_length``."""
        if self.settings.fixed_length:
            return self.fixed_sample_size
        n = max(1, math.ceil(seconds * self.sample_rate))
        return math.ceil(n / self.min_input_length) * self.min_input_length

    def num_samples_for(self, seconds: float) -> int:
        return max(1, round(seconds * self.sample_rate))

    def is_stochastic(self, sampler: str) -> bool:
        return bool(self.samplers[sampler].stochastic)

    def describe(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "sample_size": self.fixed_sample_size or None,
                "audio_channels": self.channels,
                "diffusion_objective": self.objective, "model_type": self.loaded.model_type,
                "conditioning": self.cond_ids, "text_conditioned": self.text_conditioned,
                "extra_conditioning": self.extra_conditioning_ids,
                "samplers": sorted(self.samplers), "default_sampler": self.default_sampler,
                "min_input_length": self.min_input_length, "fixed_length": self.settings.fixed_length,
                "precision": self.settings.precision}

    # --- batching ----------------------------------------------------------------------------------

    def batch_key(self, spec: GenerationSpec) -> Hashable:
        """Requests with equal keys can share one model call."""
        shareable = not self.is_stochastic(spec.sampler)
        return (spec.sample_size, spec.steps, spec.cfg_scale, spec.sampler, bool(spec.negative_prompt),
                None if shareable else spec.token)

    def _metadata(self, spec: GenerationSpec, prompt: str) -> dict[str, Any]:
        return {**spec.conditioning, "prompt": prompt, "seconds_start": 0.0,
                "seconds_total": float(spec.seconds_total)}

    def _noise(self, seeds: Sequence[int], latent_length: int) -> torch.Tensor:
        items = [torch.randn((1, self.model.io_channels, latent_length),
                             generator=torch.Generator(device="cpu").manual_seed(seed)) for seed in seeds]
        return torch.cat(items).to(self.device)

    def _latent_length(self, sample_size: int) -> int:
        pretransform = getattr(self.model, "pretransform", None)
        return sample_size // pretransform.downsampling_ratio if pretransform is not None else sample_size

    def run_batch(self, specs: Sequence[GenerationSpec],
                  should_stop: Callable[[], bool] | None = None) -> list[GenerationResult]:
        """Generate every variation of every spec in ONE model call (specs share a batch key).

        ``should_stop`` is asked between sampler steps; when it returns True the call ends with
        :class:`~stable_audio_ops.errors.GenerationCancelled` (the batcher: every client of the call is gone)."""
        first = specs[0]
        conditioning, negative, seeds = [], [], []
        for spec in specs:
            conditioning += [self._metadata(spec, spec.prompt)] * spec.batch_size
            negative += [self._metadata(spec, spec.negative_prompt)] * spec.batch_size
            seeds += spec.seeds
        use_negative = bool(first.negative_prompt) and self.text_conditioned
        noise = self._noise(seeds, self._latent_length(first.sample_size))
        for spec in specs:
            spec.progress.begin()

        def on_step(info: dict[str, Any]) -> None:
            for spec in specs:
                spec.progress.advance(int(info.get("i", 0)) + 1)

        with torch.inference_mode():
            audio = generate(self.model, self.loaded.model_type, steps=first.steps, cfg_scale=first.cfg_scale,
                             conditioning=conditioning, negative_conditioning=negative if use_negative else None,
                             batch_size=len(seeds), sample_size=first.sample_size, seed=seeds[0], device=self.device,
                             noise=noise, sampler_type=first.sampler, progress=False, should_stop=should_stop,
                             callback=on_step, **self._precision)
        audio = audio.float().cpu().numpy()
        results, start = [], 0
        for spec in specs:
            chunk = audio[start:start + spec.batch_size, :, : spec.num_samples]
            start += spec.batch_size
            results.append(GenerationResult(
                audio=[encode_audio(item, self.sample_rate, spec.format) for item in chunk], seeds=spec.seeds,
                media_type=FORMATS[spec.format][2], format=spec.format, sample_rate=self.sample_rate,
                num_samples=spec.num_samples, channels=self.channels))
        return results

    def warmup_spec(self) -> GenerationSpec:
        """The smallest valid request: one step over the shortest length."""
        seconds = min(self.max_seconds, self.min_input_length / self.sample_rate)
        return GenerationSpec(prompt="warm-up", negative_prompt="", seconds_total=seconds, steps=1, cfg_scale=1.0,
                              seed=0, sampler=self.default_sampler, batch_size=1, format="wav",
                              sample_size=self.sample_size_for(seconds), num_samples=self.num_samples_for(seconds),
                              conditioning={k: 0 for k in self.extra_conditioning_ids})
