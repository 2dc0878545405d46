"""few_step: the trained latent-diffusion DiT as teacher -> ARC post-training -> unwrapped few-step student
(rf_denoiser, pingpong sampling) -> student and teacher judged and timed on the evaluation's test captions, held
to the goal -> registry with the teacher's version as lineage -> champion only when the goal holds."""

from pipelines.few_step.pipeline import create_pipeline

__all__ = ["create_pipeline"]
