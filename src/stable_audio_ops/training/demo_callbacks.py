"""Which demo callback a training run gets, by model type: one table (:data:`DEMO_CALLBACKS`).

Why a table: adding a model type's demos is one entry, and the run recipe never branches on model types.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl

from stable_audio_ops.config.schema import ConfigNode
from stable_audio_ops.training.clap_demos import CLAPRetrievalCallback
from stable_audio_ops.training.demos import AutoencoderDemoCallback
from stable_audio_ops.training.diffusion_autoencoder_demos import DiffusionAutoencoderDemoCallback
from stable_audio_ops.training.diffusion_demos import build_diffusion_cond_demo_callback
from stable_audio_ops.training.diffusion_uncond_demos import build_diffusion_uncond_demo_callback
from stable_audio_ops.training.lm_demos import build_lm_demo_callback
from stable_audio_ops.training.options import TrainOptions

log = logging.getLogger(__name__)

# batch size -> a dataloader over the demo data (the validation set when given, else the training set)
DemoLoaderFactory = Callable[[int], Any]
DemoBuilder = Callable[[dict, TrainOptions, DemoLoaderFactory], "pl.Callback | None"]


def _diffusion_cond_demo_callback(model_config: dict, options: TrainOptions,
                                  demo_loader_factory: DemoLoaderFactory) -> pl.Callback | None:
    return build_diffusion_cond_demo_callback(model_config, options.model_config)


def _diffusion_uncond_demo_callback(model_config: dict, options: TrainOptions,
                                    demo_loader_factory: DemoLoaderFactory) -> pl.Callback | None:
    return build_diffusion_uncond_demo_callback(model_config, options.model_config)


def _lm_demo_callback(model_config: dict, options: TrainOptions,
                      demo_loader_factory: DemoLoaderFactory) -> pl.Callback | None:
    return build_lm_demo_callback(model_config, options.model_config)


def _autoencoder_demo_callback(model_config: dict, options: TrainOptions,
                               demo_loader_factory: DemoLoaderFactory) -> pl.Callback | None:
    """Reconstructions of one demo batch; a diffusion autoencoder decodes in ``demo_steps`` diffusion steps."""
    demo = ConfigNode(model_config, options.model_config).child("training", {}).child("demo", {})
    demo_every = demo.get("demo_every", "a positive int", 2000)
    max_demos = demo.get("max_demos", "a positive int", 8)
    extra: dict[str, Any] = {}
    callback_class = AutoencoderDemoCallback
    if model_config.get("model_type") == "diffusion_autoencoder":
        callback_class = DiffusionAutoencoderDemoCallback
        extra = {"demo_steps": demo.get("demo_steps", "a positive int", 250),
                 "seed": demo.get("demo_seed", "a non-negative int", 0)}
    loader = demo_loader_factory(min(options.batch_size, max_demos))
    try:
        batch = next(iter(loader))
    except StopIteration:
        log.warning("the demo dataset yields no complete batch; no demos will be logged")
        return None
    return callback_class(batch[0], demo_every=demo_every, sample_rate=model_config["sample_rate"],
                          max_demos=max_demos, demo_metadata=list(batch[1]) if len(batch) > 1 else None, **extra)


def _clap_demo_callback(model_config: dict, options: TrainOptions,
                        demo_loader_factory: DemoLoaderFactory) -> pl.Callback | None:
    """Retrieval metrics of one held batch (``training.demo.demo_every``, ``num_demos`` items at most)."""
    demo = ConfigNode(model_config, options.model_config).child("training", {}).child("demo", {})
    demo_every = demo.get("demo_every", "a positive int", 2000)
    num_demos = demo.get("num_demos", "a positive int", 8)
    loader = demo_loader_factory(min(options.batch_size, num_demos))
    try:
        batch = next(iter(loader))
    except StopIteration:
        log.warning("the demo dataset yields no complete batch; no retrieval demos will be logged")
        return None
    return CLAPRetrievalCallback(batch[0], list(batch[1]), demo_every=demo_every)


DEMO_CALLBACKS: dict[str, DemoBuilder] = {
    "autoencoder": _autoencoder_demo_callback,
    "diffusion_cond": _diffusion_cond_demo_callback,
    "diffusion_cond_inpaint": _diffusion_cond_demo_callback,
    "diffusion_uncond": _diffusion_uncond_demo_callback,
    "diffusion_autoencoder": _autoencoder_demo_callback,
    "lm": _lm_demo_callback,
    "clap": _clap_demo_callback,
}


def build_demo_callback(model_config: dict, options: TrainOptions,
                        demo_loader_factory: DemoLoaderFactory) -> pl.Callback | None:
    """The demo callback of the model type (:data:`DEMO_CALLBACKS`), or None when it has none."""
    builder = DEMO_CALLBACKS.get(str(model_config.get("model_type")))
    return builder(model_config, options, demo_loader_factory) if builder is not None else None


__all__ = ["DEMO_CALLBACKS", "build_demo_callback"]
