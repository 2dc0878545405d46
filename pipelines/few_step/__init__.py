"""few_step: the trained latent-diffusion DiT as teacher -> ARC post-training -> unwrapped few-step student
(rf_denoiser, pingpong sampling) -> registry with the teacher's version as lineage."""

from pipelines.few_step.pipeline import create_pipeline

__all__ = ["create_pipeline"]
