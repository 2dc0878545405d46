"""fine_tune: pretrained model + prepared dataset -> own-pretransform latents -> fine-tuning -> adapter + merged
model -> evaluation beside the base -> registry."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from pipelines.evaluation.nodes import load_evaluation_clips
from pipelines.fine_tune.nodes import (
    build_fine_tune_config,
    evaluate_against_base,
    export_fine_tuned,
    extract_pretransform,
    pre_encode_latents,
    register_fine_tune,
    resolve_base_model,
    train_fine_tune,
)
from pipelines.latent_diffusion.nodes import latent_dataset_config, summarize_latent_folder


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(resolve_base_model, inputs="params:fine_tune", outputs="fine_tune_base_model",
                 name="resolve_base_model"),
            node(extract_pretransform, inputs="fine_tune_base_model", outputs="fine_tune_pretransform",
                 name="extract_pretransform"),
            node(pre_encode_latents, inputs=["fine_tune_pretransform", "prepared_dataset_config", "params:fine_tune"],
                 outputs="fine_tune_latents", name="fine_tune_pre_encode"),
            node(summarize_latent_folder, inputs="fine_tune_latents", outputs="fine_tune_latents_summary",
                 name="fine_tune_summarize_latents"),
            node(latent_dataset_config, inputs=["fine_tune_latents", "prepared_dataset_config"],
                 outputs="fine_tune_latent_dataset_config", name="fine_tune_latent_dataset_config"),
            node(build_fine_tune_config, inputs=["fine_tune_base_model", "params:fine_tune"],
                 outputs="fine_tune_model_config", name="build_fine_tune_config"),
            node(train_fine_tune,
                 inputs=["fine_tune_model_config", "fine_tune_latent_dataset_config", "fine_tune_base_model",
                         "params:fine_tune"],
                 outputs="fine_tune_training_result", name="train_fine_tune"),
            node(export_fine_tuned, inputs=["fine_tune_training_result", "fine_tune_model_config", "fine_tune_base_model"],
                 outputs=["fine_tuned_model", "fine_tune_adapter", "fine_tune_metrics"], name="export_fine_tuned"),
            node(load_evaluation_clips, inputs=["test_dataset_config", "params:evaluation"],
                 outputs="fine_tune_evaluation_clips", name="fine_tune_evaluation_clips"),
            node(evaluate_against_base,
                 inputs=["fine_tune_base_model", "fine_tuned_model", "fine_tune_evaluation_clips", "params:evaluation"],
                 outputs="fine_tune_evaluation", name="evaluate_fine_tune"),
            node(register_fine_tune,
                 inputs=["fine_tuned_model", "fine_tune_adapter", "fine_tune_base_model", "fine_tune_evaluation",
                         "params:fine_tune"],
                 outputs="fine_tune_registration", name="register_fine_tune"),
        ]
    )
