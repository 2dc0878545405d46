"""latent_diffusion: unwrapped autoencoder + prepared dataset -> latents -> DiT training -> unwrap -> data/06_models."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from pipelines.latent_diffusion.nodes import (
    build_model_config,
    latent_dataset_config,
    pre_encode_latents,
    summarize_latent_folder,
    train_latent_diffusion,
    unwrap_latent_diffusion,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                pre_encode_latents,
                inputs=["autoencoder_model", "prepared_dataset_config", "params:latent_diffusion"],
                outputs="latents",
                name="pre_encode_latents",
            ),
            node(summarize_latent_folder, inputs="latents", outputs="latents_summary", name="summarize_latents"),
            node(
                latent_dataset_config,
                inputs=["latents", "prepared_dataset_config"],
                outputs="latent_dataset_config",
                name="latent_dataset_config",
            ),
            node(
                build_model_config,
                inputs=["dit_model_config", "autoencoder_model", "latents_summary", "params:latent_diffusion"],
                outputs="latent_diffusion_model_config",
                name="build_latent_diffusion_config",
            ),
            node(
                train_latent_diffusion,
                inputs=["latent_diffusion_model_config", "latent_dataset_config", "autoencoder_model",
                        "params:latent_diffusion"],
                outputs="latent_diffusion_training_result",
                name="train_latent_diffusion",
            ),
            node(
                unwrap_latent_diffusion,
                inputs=["latent_diffusion_training_result", "latent_diffusion_model_config"],
                outputs=["latent_diffusion_model", "latent_diffusion_metrics"],
                name="unwrap_latent_diffusion",
            ),
        ]
    )
