"""clap: random RoBERTa (save_pretrained) -> demo clap config -> train on the prepared train split's captioned clips
-> unwrap -> data/06_models/clap.safetensors (evaluation.clap_model)."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from pipelines.clap.nodes import build_clap_config, build_text_encoder, export_clap, train_clap


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(build_text_encoder, inputs="params:clap", outputs="clap_text_encoder", name="build_clap_text_encoder"),
            node(build_clap_config, inputs=["clap_model_template", "clap_text_encoder"], outputs="clap_model_config",
                 name="build_clap_config"),
            node(train_clap, inputs=["clap_model_config", "prepared_dataset_config", "params:clap"],
                 outputs="clap_training_result", name="train_clap"),
            node(export_clap, inputs=["clap_training_result", "clap_model_config"],
                 outputs=["clap_model", "clap_metrics"], name="export_clap"),
        ]
    )
