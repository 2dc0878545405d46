"""diffusion_uncond: the autoencoder pipeline's autoencoder -> latents of the prepared train split -> an
unconditional latent DiT (train, unwrap) -> generated clips judged on the test split (pitched accuracy and KID
beside real clips and noise) -> registry (tagged with the autoencoder's version)."""

from pipelines.diffusion_uncond.pipeline import create_pipeline

__all__ = ["create_pipeline"]
