"""Reconstruction demos during diffusion_autoencoder training (0.0.20's DiffusionAutoencoderDemoCallback, in part).

The autoencoder demo (:class:`~stable_audio_ops.training.demos.AutoencoderDemoCallback`: real and reconstruction
interleaved in ``recon.wav`` + its spectrogram, every ``demo_every`` steps, from the EMA model) with the decode
run by the diffusion decoder in ``training.demo.demo_steps`` DDIM steps (upstream's key, default 250) from
noise seeded by ``demo_seed`` (0), so successive demos are comparable (a ``vae`` bottleneck still samples its
latents, as upstream). Upstream's latent PCA and first-stage (pretransform-only) reconstructions are not logged:
this version builds no diffusion_autoencoder with a pretransform, and the PCA plot needs a 3-D plotting
dependency the project does not carry.
"""

from __future__ import annotations

import torch

from stable_audio_ops.training.autoencoder import trim_to_shortest
from stable_audio_ops.training.demos import AutoencoderDemoCallback


class DiffusionAutoencoderDemoCallback(AutoencoderDemoCallback):
    """:class:`AutoencoderDemoCallback` whose decode takes ``demo_steps`` diffusion steps from seeded noise."""

    def __init__(self, *args, demo_steps: int = 250, seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        if demo_steps < 1:
            raise ValueError(f"demo_steps must be >= 1, got {demo_steps}")
        self.demo_steps = int(demo_steps)
        self.seed = int(seed)

    @torch.no_grad()
    def reconstruct(self, pl_module) -> tuple[torch.Tensor, torch.Tensor]:
        model = pl_module.inference_model()
        reals = self.demo_audio.to(pl_module.device)
        latents = model.encode(reals)
        noise = torch.randn(reals.shape[0], model.io_channels, latents.shape[-1] * model.downsampling_ratio,
                            generator=torch.Generator().manual_seed(self.seed)).to(reals.device)
        fakes = model.decode(latents, steps=self.demo_steps, noise=noise)
        fakes, reals = trim_to_shortest(fakes.float(), reals.float())
        return reals, fakes


__all__ = ["DiffusionAutoencoderDemoCallback"]
