"""The server's model side without HTTP: what a client of the API gets from :class:`Engine`.

The model is the tiny text-conditioned DiT of ``tests/fixtures/configs/dit_tiny.json`` (a ``prompt``
list conditioner and a ``seconds_total`` number conditioner up to 10 s), built with fixed random weights.
Upstream's init zeroes the DiT's output layers, so a fresh model ignores its conditioning; those layers get
small random weights here, so prompts matter as they do in a trained model.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_ops.errors import GenerationCancelled
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.loading import LoadedModel
from stable_audio_ops.serving.engine import SEED_LIMIT, Engine, GenerationSpec, encode_audio
from stable_audio_ops.serving.settings import ServeSettings

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "configs" / "dit_tiny.json"
SR = 16000
PCM16_STEP = 1 / 32768


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    config = json.loads(CONFIG.read_text())
    torch.manual_seed(0)
    model = create_model_from_config(config, str(CONFIG)).eval().requires_grad_(False)
    with torch.no_grad():
        for parameter in model.model.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.05)
    return LoadedModel(model=model, config=config, name="dit_tiny", source=str(CONFIG), checkpoint=CONFIG,
                       device=torch.device("cpu"))


@pytest.fixture(scope="module")
def engine(loaded: LoadedModel) -> Engine:
    return Engine(loaded, ServeSettings(model="dit_tiny"))


def make_spec(engine: Engine, seconds: float = 0.02, **fields) -> GenerationSpec:
    """A request as the HTTP layer builds it (``build_spec``): lengths from the engine, the rest as given."""
    values = {"prompt": "flute", "negative_prompt": "", "seconds_total": seconds, "steps": 3, "cfg_scale": 3.0,
              "seed": 11, "sampler": engine.default_sampler, "batch_size": 1, "format": "wav",
              "sample_size": engine.sample_size_for(seconds), "num_samples": engine.num_samples_for(seconds)}
    return GenerationSpec(**{**values, **fields})


def decode(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio[:, 0], rate


def test_a_request_gets_the_same_audio_alone_or_sharing_a_call_with_strangers(engine):
    mine = make_spec(engine, prompt="flute", seed=11)
    stranger = make_spec(engine, prompt="organ", seed=99)
    (alone,) = engine.run_batch([mine])
    _, shared = engine.run_batch([stranger, mine])  # mine is the second item of the call
    alone_audio, _ = decode(alone.audio[0])
    shared_audio, _ = decode(shared.audio[0])
    assert np.abs(alone_audio).max() > 10 * PCM16_STEP
    np.testing.assert_allclose(shared_audio, alone_audio, rtol=0, atol=4 * PCM16_STEP)
    stranger_audio, _ = decode(engine.run_batch([stranger])[0].audio[0])
    assert np.abs(stranger_audio - alone_audio).max() > 10 * PCM16_STEP  # the prompt and seed matter


def test_variation_i_is_the_request_with_seed_plus_i_wrapping_at_2_to_the_32(engine):
    spec = make_spec(engine, seed=SEED_LIMIT - 2, batch_size=3)
    (result,) = engine.run_batch([spec])
    assert result.seeds == [SEED_LIMIT - 2, SEED_LIMIT - 1, 0]
    third, _ = decode(result.audio[2])
    (single,) = engine.run_batch([make_spec(engine, seed=0)])
    np.testing.assert_allclose(third, decode(single.audio[0])[0], rtol=0, atol=4 * PCM16_STEP)
    names = zipfile.ZipFile(io.BytesIO(result.zip_bytes())).namelist()
    assert names == [f"sample_0_seed{SEED_LIMIT - 2}.wav", f"sample_1_seed{SEED_LIMIT - 1}.wav", "sample_2_seed0.wav"]


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_audio_has_the_requested_duration_although_the_model_generates_whole_latent_frames(engine, fmt):
    seconds = 0.0101  # 161.6 samples: returned 162, generated 168 (a multiple of the 8-sample latent frame)
    spec = make_spec(engine, seconds=seconds, format=fmt)
    assert (spec.num_samples, spec.sample_size) == (162, 168)
    (result,) = engine.run_batch([spec])
    audio, rate = decode(result.audio[0])
    assert (rate, audio.shape, result.channels) == (SR, (162,), 1)
    assert result.media_type == f"audio/{fmt}" and result.num_samples == 162


def test_only_requests_that_can_run_as_one_sampler_call_share_a_batch_key(engine):
    base = make_spec(engine)
    assert engine.batch_key(base) == engine.batch_key(make_spec(engine, prompt="organ", seed=5, batch_size=2))
    for change in ({"seconds": 0.05}, {"steps": 4}, {"cfg_scale": 1.0}, {"sampler": "dpmpp-2m"},
                   {"negative_prompt": "noise"}):
        assert engine.batch_key(make_spec(engine, **change)) != engine.batch_key(base), change
    # a stochastic sampler draws noise from one generator per call: such requests never share a call
    stochastic = [make_spec(engine, sampler="dpmpp-2m-sde") for _ in range(2)]
    assert engine.is_stochastic("dpmpp-2m-sde") and not engine.is_stochastic(engine.default_sampler)
    assert engine.batch_key(stochastic[0]) != engine.batch_key(stochastic[1])


def test_negative_prompt_steers_a_text_conditioned_model(engine):
    assert engine.text_conditioned and engine.extra_conditioning_ids == []
    plain, _ = decode(engine.run_batch([make_spec(engine)])[0].audio[0])
    steered, _ = decode(engine.run_batch([make_spec(engine, negative_prompt="organ")])[0].audio[0])
    assert np.abs(steered - plain).max() > 10 * PCM16_STEP


def test_the_duration_limit_follows_the_server_the_seconds_conditioner_and_fixed_length(loaded):
    assert Engine(loaded, ServeSettings(model="m", max_seconds=47.0)).max_seconds == 10.0  # conditioner max_val
    assert Engine(loaded, ServeSettings(model="m", max_seconds=3.0)).max_seconds == 3.0
    fixed = Engine(loaded, ServeSettings(model="m", fixed_length=True))
    assert fixed.max_seconds == 512 / SR  # the model's sample_size
    assert fixed.sample_size_for(0.001) == fixed.sample_size_for(0.03) == 512  # every duration batches together
    assert fixed.describe()["fixed_length"] is True


def test_the_warm_up_request_is_valid_and_runs(engine):
    spec = engine.warmup_spec()
    assert spec.steps == 1 and spec.sample_size == engine.min_input_length
    (result,) = engine.run_batch([spec])
    assert decode(result.audio[0])[0].shape == (spec.num_samples,)


def test_encoded_audio_is_clipped_to_full_scale_instead_of_wrapping():
    data = encode_audio(np.array([[2.0, -3.0, 0.5]], dtype=np.float32), SR, "wav")
    audio, _ = decode(data)
    np.testing.assert_allclose(audio, [32767 / 32768, -1.0, 0.5], atol=PCM16_STEP)


def test_every_variation_of_every_request_runs_in_one_model_call(engine, monkeypatch):
    import stable_audio_ops.serving.engine as engine_module

    calls: list[int] = []
    real = engine_module.generate

    def counting(model, model_type, **params):
        calls.append(params["batch_size"])
        return real(model, model_type, **params)

    monkeypatch.setattr(engine_module, "generate", counting)
    specs = [make_spec(engine, batch_size=2), dataclasses.replace(make_spec(engine, seed=3), prompt="piano")]
    results = engine.run_batch(specs)
    assert calls == [3] and [len(r.audio) for r in results] == [2, 1]


def test_should_stop_ends_a_call_between_sampler_steps_and_changes_nothing_when_it_says_go_on(engine):
    spec = make_spec(engine, steps=6)
    (plain,) = engine.run_batch([spec])
    asked: list[int] = []

    def go_on() -> bool:
        asked.append(1)
        return False

    (watched,) = engine.run_batch([spec], should_stop=go_on)
    assert watched.audio == plain.audio  # byte-identical: the check does not touch the numbers
    assert len(asked) == 1 + 6  # before the first step and after each step

    def after_two_steps() -> bool:
        asked.append(1)
        return len(asked) > 7 + 2

    with pytest.raises(GenerationCancelled, match="generation cancelled after step 2"):
        engine.run_batch([spec], should_stop=after_two_steps)
