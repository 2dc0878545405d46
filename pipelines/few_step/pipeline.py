"""few_step: trained DiT (teacher) -> ARC student config -> post-training -> unwrap -> student and teacher judged
on the evaluation's test captions (goal verdict, report) -> registry (teacher lineage, scores) -> promotion."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from pipelines.evaluation.nodes import load_evaluation_clips
from pipelines.few_step.nodes import (
    build_few_step_config,
    evaluate_few_step,
    export_few_step,
    judge_few_step_goal,
    promote_few_step,
    register_few_step,
    report_few_step,
    train_few_step,
)


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
            node(load_evaluation_clips, inputs=["test_dataset_config", "params:evaluation"],
                 outputs="few_step_evaluation_clips", name="few_step_evaluation_clips"),
            node(evaluate_few_step,
                 inputs=["latent_diffusion_model", "few_step_model", "few_step_evaluation_clips", "params:few_step",
                         "params:evaluation"],
                 outputs="few_step_comparison", name="evaluate_few_step"),
            node(judge_few_step_goal, inputs=["few_step_comparison", "params:few_step"], outputs="few_step_goal",
                 name="judge_few_step_goal"),
            node(report_few_step, inputs=["few_step_comparison", "few_step_goal"],
                 outputs=["few_step_evaluation", "few_step_evaluation_metrics", "few_step_report"],
                 name="report_few_step"),
            node(register_few_step,
                 inputs=["few_step_model", "latent_diffusion_model", "few_step_comparison", "few_step_goal",
                         "params:few_step", "params:evaluation"],
                 outputs="few_step_registration", name="register_few_step"),
            node(promote_few_step,
                 inputs=["few_step_registration", "few_step_comparison", "few_step_goal", "params:few_step",
                         "params:evaluation"],
                 outputs="few_step_promotion", name="promote_few_step"),
        ]
    )
