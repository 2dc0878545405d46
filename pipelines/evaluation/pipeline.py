"""evaluation: autoencoder + latent diffusion outputs -> registry versions -> judges on the test split -> promotion
(floors first) -> report."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from pipelines.evaluation.nodes import (
    build_report,
    decide_promotions,
    evaluate_autoencoder,
    evaluate_generation,
    load_evaluation_clips,
    make_plots,
    register_autoencoder,
    register_latent_diffusion,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(register_autoencoder, inputs=["autoencoder_model", "params:evaluation.registry"],
                 outputs="autoencoder_registration", name="register_autoencoder"),
            node(register_latent_diffusion,
                 inputs=["latent_diffusion_model", "autoencoder_registration", "params:evaluation.registry"],
                 outputs="latent_diffusion_registration", name="register_latent_diffusion"),
            node(load_evaluation_clips, inputs=["test_dataset_config", "params:evaluation"],
                 outputs="evaluation_clips", name="load_evaluation_clips"),
            node(evaluate_autoencoder, inputs=["autoencoder_model", "evaluation_clips", "params:evaluation"],
                 outputs=["autoencoder_evaluation", "reconstruction_examples"], name="evaluate_autoencoder"),
            node(evaluate_generation, inputs=["latent_diffusion_model", "evaluation_clips", "params:evaluation"],
                 outputs=["generation_evaluation", "generation_examples"], name="evaluate_generation"),
            node(decide_promotions,
                 inputs=["autoencoder_registration", "latent_diffusion_registration", "autoencoder_evaluation",
                         "generation_evaluation", "params:evaluation"],
                 outputs="promotion_decision", name="decide_promotions"),
            node(build_report,
                 inputs=["autoencoder_evaluation", "generation_evaluation", "promotion_decision", "dataset_split"],
                 outputs=["evaluation_metrics", "evaluation_mlflow_metrics", "evaluation_report"],
                 name="build_metrics"),
            node(make_plots,
                 inputs=["generation_examples", "reconstruction_examples", "generation_evaluation",
                         "autoencoder_model", "latent_diffusion_model"],
                 outputs=["plot_spectrograms", "plot_metric_bars", "plot_loss_curves", "plot_comparison"],
                 name="make_plots"),
        ]
    )
