"""diffusion_uncond: unwrapped autoencoder + prepared dataset -> latents -> unconditional DiT (train, unwrap) ->
generated clips judged on the test split, report -> registry.

Pre-encoding, the latent dataset config, the model config and training are the latent_diffusion pipeline's nodes
(``pre_encode_latents``, ``latent_dataset_config``, ``build_model_config``, ``train_latent_diffusion``), each
reading the ``diffusion_uncond`` parameters; the autoencoder is the autoencoder pipeline's (``autoencoder_model``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node, pipeline

from pipelines.diffusion_uncond.nodes import (
    evaluate_diffusion_uncond,
    register_diffusion_uncond,
    unwrap_diffusion_uncond,
)
from pipelines.latent_diffusion.nodes import (
    build_model_config,
    latent_dataset_config,
    pre_encode_latents,
    summarize_latent_folder,
    train_latent_diffusion,
)

SECTION = "diffusion_uncond"


def _with(func: Callable, **settings) -> Callable:
    """``func`` with ``settings`` bound, keeping its name (Kedro's logs name the node's function)."""
    return update_wrapper(partial(func, **settings), func)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(_with(pre_encode_latents, section=SECTION),
                 inputs=["autoencoder_model", "prepared_dataset_config", "params:diffusion_uncond"],
                 outputs="diffusion_uncond_latents", name="pre_encode_diffusion_uncond_latents"),
            node(summarize_latent_folder, inputs="diffusion_uncond_latents", outputs="diffusion_uncond_latents_summary",
                 name="summarize_diffusion_uncond_latents"),
            node(latent_dataset_config, inputs=["diffusion_uncond_latents", "prepared_dataset_config"],
                 outputs="diffusion_uncond_latent_dataset_config", name="diffusion_uncond_latent_dataset_config"),
            node(_with(build_model_config, section=SECTION),
                 inputs=["diffusion_uncond_base_model_config", "autoencoder_model", "diffusion_uncond_latents_summary",
                         "params:diffusion_uncond"],
                 outputs="diffusion_uncond_model_config", name="build_diffusion_uncond_config"),
            node(_with(train_latent_diffusion, section=SECTION),
                 inputs=["diffusion_uncond_model_config", "diffusion_uncond_latent_dataset_config", "autoencoder_model",
                         "params:diffusion_uncond"],
                 outputs="diffusion_uncond_training_result", name="train_diffusion_uncond"),
            node(unwrap_diffusion_uncond, inputs=["diffusion_uncond_training_result", "diffusion_uncond_model_config"],
                 outputs=["diffusion_uncond_model", "diffusion_uncond_metrics"], name="unwrap_diffusion_uncond"),
            node(evaluate_diffusion_uncond, inputs=["diffusion_uncond_model", "test_dataset_config",
                                                    "params:diffusion_uncond"],
                 outputs=["diffusion_uncond_evaluation", "diffusion_uncond_evaluation_metrics", "diffusion_uncond_report",
                          "diffusion_uncond_generated"], name="evaluate_diffusion_uncond"),
            node(register_diffusion_uncond, inputs=["autoencoder_model", "diffusion_uncond_model",
                                                    "diffusion_uncond_evaluation", "params:diffusion_uncond"],
                 outputs="diffusion_uncond_registration", name="register_diffusion_uncond"),
        ]
    )
