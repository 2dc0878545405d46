"""Diffusion maths: noise schedules, timestep distribution shifts (:mod:`.schedules`) and samplers
(:mod:`.samplers`).

Pure functions of tensors and of a bound model callable: nothing here imports a model, a dataset or
the training stack, so models (their default sampling shift, the diffusion autoencoder's decoder),
training (timestep sampling) and inference (generation) all build on it from above.
``stable_audio_ops.inference.schedules`` / ``.samplers`` are the same modules under their old names.
"""
