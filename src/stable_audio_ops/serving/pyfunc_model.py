"""MLflow "models from code" pyfunc for registered stable-audio-ops models.

This file is copied into every registered model (``python_model=<this file>``, by
:func:`stable_audio_ops.tracking.registry.log_model_to_registry`), so ``mlflow models serve -m
models:/NAME@champion --env-manager local`` and ``mlflow.pyfunc.load_model`` run it. It lives in the
serving layer because it is a serving front end (the same :class:`Engine` as the FastAPI server); the
registry only ships the file, it never imports it.

- Diffusion models (``diffusion_cond``): ``predict`` takes rows with a ``prompt`` (optional
  ``negative_prompt``, ``seconds_total``, ``steps``, ``cfg_scale``, ``seed``) and generates audio through the
  same :class:`~stable_audio_ops.serving.engine.Engine` as the FastAPI server, so a seed gives the same
  audio in both. Each row returns ``audio_wav_base64`` (16-bit WAV), ``sample_rate``, ``seed``,
  ``num_samples`` and ``channels``.
- Autoencoders: rows with ``audio_wav_base64`` come back reconstructed (encode -> decode).
- Adapter-only versions (artifacts ``adapter`` + ``base_model``) load their base (the registry at
  ``MLFLOW_TRACKING_URI``, or ``$SAO_BASE_MODEL``) and apply the adapter, then serve as a diffusion model.

Inputs: rows with a ``prompt`` as a DataFrame, a list of dicts or one dict, checked by MLflow against the
version's signature (:func:`stable_audio_ops.tracking.model_card.model_signature`); the generation settings
are MLflow *params* of the call (over HTTP: ``{"dataframe_records": [{"prompt": "..."}], "params": {"steps":
50, "seed": 1}}``); row i of a call with a seed uses ``seed + i``. Called directly, without the signature
(older versions), a row's own ``steps`` / ``seed`` / ... win over the params. ``seconds_total`` defaults to the model's training length (``sample_size / sample_rate``); ``steps`` and
``cfg_scale`` default to :data:`stable_audio_ops.inference.entry.GENERATION_DEFAULTS` (as the server and the
generate command). Without a signature (older versions, direct calls) a list of prompt strings works too.
"""

from __future__ import annotations

import base64
import io
import math
import secrets
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import soundfile as sf
import torch

import mlflow
from stable_audio_ops.evaluation.reconstruction import deterministic_latents
from stable_audio_ops.inference.entry import CONDITIONED_MODEL_TYPES, GENERATION_DEFAULTS
from stable_audio_ops.serving.engine import SEED_LIMIT, Engine, GenerationSpec, encode_audio
from stable_audio_ops.serving.settings import ServeSettings
from stable_audio_ops.tracking.loading import load_model

DEFAULT_STEPS = GENERATION_DEFAULTS.steps
DEFAULT_CFG_SCALE = GENERATION_DEFAULTS.cfg_scale
PYFUNC_MODEL_TYPES = ("autoencoder", *CONDITIONED_MODEL_TYPES)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _rows(model_input: Any) -> list[dict[str, Any]]:
    """Normalise the accepted input shapes to a list of dicts without missing values."""
    if hasattr(model_input, "to_dict") and hasattr(model_input, "columns"):
        records = model_input.to_dict(orient="records")
    elif isinstance(model_input, str):
        records = [{"prompt": model_input}]
    elif isinstance(model_input, dict):
        records = [model_input]
    elif hasattr(model_input, "tolist"):  # numpy array of prompts
        records = [{"prompt": str(item)} if not isinstance(item, dict) else item for item in model_input.tolist()]
    else:
        records = [{"prompt": item} if isinstance(item, str) else dict(item) for item in model_input]
    return [{k: v for k, v in row.items() if not _is_missing(v)} for row in records]


class StableAudioModel(mlflow.pyfunc.PythonModel):
    """Generates audio from prompts (diffusion) or reconstructs audio (autoencoder)."""

    def load_context(self, context: Any) -> None:
        artifacts = context.artifacts
        if "adapter" in artifacts:  # an adapter-only version: its folder names the base (tracking.adapter_versions)
            weights, config = Path(artifacts["adapter"]).parent, None
        else:
            weights, config = Path(artifacts["weights"]), Path(artifacts["model_config"])
        loaded = load_model(weights, config, "auto", model_types=PYFUNC_MODEL_TYPES,
                            purpose="served by the MLflow pyfunc")
        self.model_type = loaded.model_type
        self.model, self.device = loaded.model, loaded.device
        if self.model_type != "autoencoder":
            self.engine = Engine(loaded, ServeSettings(model=str(weights), warmup=False))

    # A DataFrame hint: what MLflow hands over after checking the signature; MLflow infers no second schema
    # from it, and the other shapes (list, dict, str) still reach _rows when the model is called directly.
    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        rows = _rows(model_input)
        if self.model_type == "autoencoder":
            return [self._reconstruct(row) for row in rows]
        return [self._generate(row, params or {}, index) for index, row in enumerate(rows)]

    def _generate(self, row: dict[str, Any], params: dict[str, Any], index: int = 0) -> dict[str, Any]:
        engine = self.engine
        if "prompt" not in row and engine.text_conditioned:
            raise ValueError("each input row needs a 'prompt'")

        def setting(key: str, default: Any) -> Any:
            """The row's value, else the call's param, else ``default``; the signature's "unset" defaults
            (0 s, "" sampler) count as not given."""
            value = row.get(key, params.get(key))
            return default if value is None or value == "" or (key == "seconds_total" and value <= 0) else value

        seconds = float(setting("seconds_total", engine.default_seconds))
        seconds = min(max(seconds, 1.0 / engine.sample_rate), engine.max_seconds)
        seed = round(float(setting("seed", -1)))
        seed += index if "seed" not in row and seed >= 0 else 0  # a call's seed: one variation per row
        seed = secrets.randbelow(SEED_LIMIT) if seed < 0 else seed % SEED_LIMIT
        spec = GenerationSpec(
            prompt=str(row.get("prompt", "")), negative_prompt=str(row.get("negative_prompt", "")),
            seconds_total=seconds, steps=round(float(setting("steps", DEFAULT_STEPS))),
            cfg_scale=float(setting("cfg_scale", DEFAULT_CFG_SCALE)), seed=seed,
            sampler=str(setting("sampler", engine.default_sampler)), batch_size=1,
            format="wav", sample_size=engine.sample_size_for(seconds), num_samples=engine.num_samples_for(seconds),
            conditioning={k: row.get(k, 0) for k in engine.extra_conditioning_ids},
        )
        result = engine.run_batch([spec])[0]
        return {"audio_wav_base64": base64.b64encode(result.audio[0]).decode("ascii"),
                "sample_rate": result.sample_rate, "seed": result.seeds[0], "num_samples": result.num_samples,
                "channels": result.channels}

    def _reconstruct(self, row: dict[str, Any]) -> dict[str, Any]:
        if "audio_wav_base64" not in row:
            raise ValueError("each input row needs 'audio_wav_base64' (a base64-encoded audio file)")
        audio, sr = sf.read(io.BytesIO(base64.b64decode(row["audio_wav_base64"])), dtype="float32", always_2d=True)
        clip = torch.from_numpy(np.ascontiguousarray(audio.T))
        with torch.inference_mode():
            prepared = self.model.preprocess_audio_list_for_encoder([clip], int(sr)).to(self.device)
            decoded = self.model.decode(deterministic_latents(self.model, prepared))
        out_sr = int(self.model.sample_rate)
        length = round(audio.shape[0] * out_sr / int(sr))
        data = encode_audio(decoded[0, :, :length].float().cpu().numpy(), out_sr, "wav")
        return {"audio_wav_base64": base64.b64encode(data).decode("ascii"), "sample_rate": out_sr}


mlflow.models.set_model(StableAudioModel())
