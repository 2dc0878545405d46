"""autoencoder: prepared dataset config + model config -> train -> unwrap -> data/06_models."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from pipelines.autoencoder.nodes import train_autoencoder, unwrap_autoencoder


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                train_autoencoder,
                inputs=["autoencoder_model_config", "prepared_dataset_config", "params:autoencoder"],
                outputs="autoencoder_training_result",
                name="train_autoencoder",
            ),
            node(
                unwrap_autoencoder,
                inputs=["autoencoder_training_result", "autoencoder_model_config"],
                outputs=["autoencoder_model", "autoencoder_metrics"],
                name="unwrap_autoencoder",
            ),
        ]
    )
