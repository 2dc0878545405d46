"""few_step: trained DiT (teacher) -> ARC student config -> post-training -> unwrap -> registry (teacher lineage)."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from pipelines.few_step.nodes import build_few_step_config, export_few_step, register_few_step, train_few_step


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(build_few_step_config, inputs=["latent_diffusion_model", "params:few_step"],
                 outputs="few_step_model_config", name="build_few_step_config"),
            node(train_few_step,
                 inputs=["few_step_model_config", "latent_dataset_config", "latent_diffusion_model", "params:few_step"],
                 outputs="few_step_training_result", name="train_few_step"),
            node(export_few_step, inputs=["few_step_training_result", "few_step_model_config"],
                 outputs=["few_step_model", "few_step_metrics"], name="export_few_step"),
            node(register_few_step,
                 inputs=["few_step_model", "latent_diffusion_model", "params:few_step", "params:evaluation"],
                 outputs="few_step_registration", name="register_few_step"),
        ]
    )
