"""latent_diffusion: unwrapped autoencoder -> pre-encode the prepared dataset -> train a DiT -> unwrap."""

from pipelines.latent_diffusion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
