"""What a registered version declares about itself: signature, example, description, requirements."""

from __future__ import annotations

from stable_audio_ops.inference.entry import GENERATION_DEFAULTS
from stable_audio_ops.tracking.model_card import (
    demo_steps,
    input_example,
    model_signature,
    pip_requirements,
    version_description,
)

CONFIG = {"model_type": "diffusion_cond", "sample_rate": 16000, "sample_size": 24576, "audio_channels": 1,
          "training": {"demo": {"demo_steps": 30, "demo_cond": [{"prompt": "a flute playing G4, soft", "seconds_total": 2}]}}}


def test_diffusion_signature_takes_prompts_and_generation_params():
    signature = model_signature("diffusion_cond")
    inputs = {c.name: c for c in signature.inputs.inputs}
    assert inputs["prompt"].required and not inputs["negative_prompt"].required
    params = {p.name: p for p in signature.params.params}
    assert params["steps"].default == GENERATION_DEFAULTS.steps and params["cfg_scale"].default == 6.0
    assert {"seed", "seconds_total", "sampler"} <= set(params)
    assert {"audio_wav_base64", "sample_rate", "seed"} <= set(signature.outputs.input_names())


def test_example_uses_the_models_demo_prompt_and_training_length():
    rows, params = input_example("diffusion_cond", CONFIG)
    assert rows == [{"prompt": "a flute playing G4, soft"}]
    assert params["seconds_total"] == 1.536 and params["steps"] < GENERATION_DEFAULTS.steps
    assert demo_steps(CONFIG) == 30 and demo_steps({"training": {}}) is None
    (row,) = input_example("autoencoder", {**CONFIG, "model_type": "autoencoder"})
    assert len(row["audio_wav_base64"]) > 1000
    assert "1.54 s" in version_description("diffusion_cond", CONFIG, "run123")
    assert "run123" in version_description("diffusion_cond", CONFIG, "run123")


def test_requirements_are_public_pins_an_index_can_serve():
    requirements = pip_requirements()
    names = {r.split("==")[0].lower() for r in requirements}
    assert {"torch", "mlflow", "numpy", "safetensors", "soundfile", "einops"} <= names
    assert all("==" in r and "+" not in r for r in requirements), requirements  # no torch==2.13.0+cpu
