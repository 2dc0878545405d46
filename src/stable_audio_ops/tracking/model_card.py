"""What a registered version says about itself in MLflow: signature, input example, description, requirements.

Why declared here and not inferred: MLflow infers a signature by running the model on an example and infers
requirements by importing it in a subprocess; both are slow for a diffusion model, and the inferred
requirements pinned ``torch==2.13.0+cpu`` (a local version no index serves) and left out this package.

The signature mirrors what :mod:`stable_audio_ops.serving.pyfunc_model` accepts:
- diffusion models: rows with a ``prompt`` (optional ``negative_prompt``); the generation settings
  (``steps``, ``cfg_scale``, ``seed``, ``seconds_total``, ``sampler``) are *params* of the call. Not row
  columns: MLflow refuses an integer column that has a missing value (pandas stores it as floats) and an
  integer sent for a float column, so per-row numbers fail as soon as rows differ; params convert ints to
  floats and fill in their defaults.
- autoencoders: rows with ``audio_wav_base64``, reconstructed.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, distribution, version
from typing import TYPE_CHECKING, Any

from stable_audio_ops.inference.entry import GENERATION_DEFAULTS

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

DISTRIBUTION = "stable-audio-ops"
# The pyfunc's runtime needs: the package's core dependencies plus its text conditioners (the demo DiT's
# prompt encoder); the extras for serving over FastAPI, pipelines and judges are not needed to predict.
RUNTIME_EXTRAS = ("text",)
# Imported by the package only where one feature needs it, so not core, yet a served model may use it.
ALSO_NEEDED = ("torchsde", "pandas")
FALLBACK_PROMPT = "a flute playing C4, soft"


def trained_seconds(config: Mapping[str, Any]) -> float | None:
    """The clip length the model trained on (``sample_size / sample_rate``), None when the config lacks either."""
    size, rate = config.get("sample_size"), config.get("sample_rate")
    return float(size) / float(rate) if size and rate else None


def _demo_section(config: Mapping[str, Any]) -> Mapping[str, Any]:
    return (config.get("training") or {}).get("demo") or {}


def demo_prompts(config: Mapping[str, Any]) -> list[str]:
    """The prompts of the config's demo conditioning (``training.demo.demo_cond``), in order."""
    conds = _demo_section(config).get("demo_cond") or []
    return [str(c["prompt"]) for c in conds if isinstance(c, dict) and c.get("prompt")]


def demo_steps(config: Mapping[str, Any]) -> int | None:
    """The sampler steps the model's training demos were rendered with (``training.demo.demo_steps``), if set:
    a step count the model is known to give recognisable audio with."""
    steps = _demo_section(config).get("demo_steps")
    return int(steps) if isinstance(steps, int | float) and steps >= 1 else None


def model_signature(model_type: str) -> ModelSignature:
    """The pyfunc's inputs, outputs and params for ``model_type``."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    if model_type == "autoencoder":
        return ModelSignature(inputs=Schema([ColSpec("string", "audio_wav_base64")]),
                              outputs=Schema([ColSpec("string", "audio_wav_base64"), ColSpec("long", "sample_rate")]))
    inputs = Schema([ColSpec("string", "prompt"), ColSpec("string", "negative_prompt", required=False)])
    outputs = Schema([ColSpec("string", "audio_wav_base64"), ColSpec("long", "sample_rate"), ColSpec("long", "seed"),
                      ColSpec("long", "num_samples"), ColSpec("long", "channels")])
    params = ParamSchema([
        ParamSpec("steps", "long", GENERATION_DEFAULTS.steps),
        ParamSpec("cfg_scale", "double", GENERATION_DEFAULTS.cfg_scale),
        ParamSpec("seed", "long", -1),  # -1: a random seed per row; else row i uses seed + i (returned)
        ParamSpec("seconds_total", "double", 0.0),  # 0: the model's training length
        ParamSpec("sampler", "string", ""),  # "": the model's default sampler
    ])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def _tone_wav_base64(sample_rate: int, seconds: float = 0.1) -> str:
    """A short 440 Hz tone as a base64 16-bit WAV: an autoencoder's example input."""
    import numpy as np
    import soundfile as sf

    t = np.arange(max(1, round(sample_rate * seconds))) / sample_rate
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sample_rate, format="WAV",
             subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def input_example(model_type: str, config: Mapping[str, Any]) -> Any:
    """What a user can send as is; MLflow runs it once when it logs the model, to check the version serves.
    Diffusion models: (rows, params), a demo prompt at the training length with few steps. Autoencoders:
    one row holding a 0.1 s tone."""
    if model_type == "autoencoder":
        return [{"audio_wav_base64": _tone_wav_base64(int(config.get("sample_rate") or 44100))}]
    params: dict[str, Any] = {"steps": 8, "seed": 1}
    seconds = trained_seconds(config)
    if seconds:
        params["seconds_total"] = round(seconds, 3)
    return [{"prompt": (demo_prompts(config) or [FALLBACK_PROMPT])[0]}], params


def version_description(model_type: str, config: Mapping[str, Any], source_run_id: str | None) -> str:
    """A few lines for the registry's version page: what the model is, how long it generates, how to call it."""
    rate, seconds = config.get("sample_rate"), trained_seconds(config)
    length = f", trained on {seconds:.3g} s clips" if seconds else ""
    run = f" Trained in MLflow run {source_run_id}." if source_run_id else ""
    if model_type == "autoencoder":
        usage = "predict: rows with audio_wav_base64 (a WAV/FLAC file) -> the reconstruction as base64 WAV."
        what = "Autoencoder (the latent space the diffusion model works in)"
    else:
        usage = ("predict: rows with prompt (optional negative_prompt) and params steps, cfg_scale, seed, "
                 "seconds_total, sampler -> audio_wav_base64 (16-bit WAV), sample_rate, seed per row.")
        what = f"Text/duration-conditioned latent diffusion model ({model_type})"
    return f"{what}, {rate} Hz, {config.get('audio_channels', '?')} channel(s){length}.{run} {usage}"


def _public(version_text: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0``: a local version label names a build no package index serves."""
    return version_text.split("+", 1)[0]


def _requirement_name(requirement: str) -> tuple[str, str | None]:
    """(distribution name, extra it belongs to or None) of a metadata requirement string."""
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0)  # type: ignore[union-attr]
    extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
    return name, extra.group(1) if extra else None


def pip_requirements() -> list[str]:
    """Exact pins (public versions) of what the pyfunc needs to run, from this package's own metadata, so
    ``mlflow models serve`` can build an environment; the package itself travels as ``code_paths``."""
    try:
        declared = distribution(DISTRIBUTION).requires or []
    except PackageNotFoundError:  # running from a source tree that was never installed
        declared = []
    names = [name for name, extra in map(_requirement_name, declared)
             if (extra is None or extra in RUNTIME_EXTRAS) and name != DISTRIBUTION]
    pins = []
    for name in dict.fromkeys([*names, *ALSO_NEEDED]):
        try:
            pins.append(f"{name}=={_public(version(name))}")
        except PackageNotFoundError:
            continue
    return pins


__all__ = ["demo_prompts", "input_example", "model_signature", "pip_requirements", "trained_seconds",
           "version_description"]
