"""The HTTP API in-process (TestClient) with the tiny fixture diffusion model: what a client sees."""

from __future__ import annotations

import contextlib
import functools
import io
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from stable_audio_ops.inference.entry import GENERATORS
from stable_audio_ops.serving.app import create_app
from stable_audio_ops.serving.settings import ServeSettings

SR = 16000
SMALL = {"seconds_total": 0.125, "steps": 3}  # 2000 samples, 3 steps: ~50 ms on one core


@contextlib.contextmanager
def serve(tiny_model, **overrides):
    settings = ServeSettings(**{"model": "fixture", "max_seconds": 1.0, "max_steps": 20, "batch_window_ms": 0.0,
                                **overrides})
    with TestClient(create_app(settings, loaded=tiny_model)) as client:
        wait_ready(client)
        yield client


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.02)


def decode(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio, rate


def wait_job(client: TestClient, job: dict, until=("succeeded", "failed", "cancelled"), timeout=30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        view = client.get(job["status_url"]).json()
        if view["status"] in until:
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.01)


@pytest.fixture
def count_calls(monkeypatch):
    """Record the batch size of every real model call (the diffusion_cond generator still runs)."""
    calls: list[int] = []
    real = GENERATORS["diffusion_cond"]

    @functools.wraps(real)  # keeps the signature generate() checks parameters against
    def counting(model, **kwargs):
        calls.append(kwargs["batch_size"])
        return real(model, **kwargs)

    monkeypatch.setitem(GENERATORS, "diffusion_cond", counting)
    return calls


@pytest.fixture
def gate(tiny_model, monkeypatch):
    """Hold model calls until ``gate.set()``, so queue states can be observed deterministically."""
    event = threading.Event()
    real = GENERATORS["diffusion_cond"]

    @functools.wraps(real)
    def held(model, **kwargs):
        assert event.wait(30), "test never opened the gate"
        return real(model, **kwargs)

    monkeypatch.setitem(GENERATORS, "diffusion_cond", held)
    yield event
    event.set()


def test_probes_models_and_docs(tiny_model):
    with serve(tiny_model) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["ready"] is True
        model = client.get("/v1/models").json()["data"][0]
        assert model["sample_rate"] == SR and model["audio_channels"] == 1
        assert model["conditioning"] == ["seconds_start", "seconds_total"]
        assert model["text_conditioned"] is False
        assert model["default_sampler"] == "euler" and "pingpong" in model["samplers"]
        assert model["limits"]["max_seconds"] == 1.0 and model["limits"]["max_steps"] == 20
        assert client.get("/docs").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/v1/generate", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/models", "/healthz", "/readyz"} <= set(paths)
        page = client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert 'id="generate"' in page.text and "http" not in page.text.split("<script>")[1].split("fetch(")[0]


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_generate_returns_decodable_audio_of_the_requested_length(tiny_model, fmt):
    with serve(tiny_model) as client:
        res = client.post("/v1/generate", json={**SMALL, "seed": 7, "format": fmt})
        assert res.status_code == 200, res.text
        assert res.headers["content-type"] == f"audio/{fmt}"
        assert res.headers["x-seed"] == "7"
        audio, rate = decode(res.content)
        assert rate == SR and audio.shape == (2000, 1)
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0
        again = client.post("/v1/generate", json={**SMALL, "seed": 7, "format": fmt})
        assert again.content == res.content  # same seed, same audio
        other = client.post("/v1/generate", json={**SMALL, "seed": 8, "format": fmt})
        assert other.content != res.content


def test_batch_size_returns_a_zip_of_variations_with_consecutive_seeds(tiny_model):
    with serve(tiny_model) as client:
        res = client.post("/v1/generate", json={**SMALL, "seed": 11, "batch_size": 2})
        assert res.status_code == 200 and res.headers["content-type"] == "application/zip"
        assert res.headers["x-seeds"] == "11,12"
        with zipfile.ZipFile(io.BytesIO(res.content)) as archive:
            names = sorted(archive.namelist())
            files = [archive.read(n) for n in names]
        assert names == ["sample_0_seed11.wav", "sample_1_seed12.wav"]
        solo = client.post("/v1/generate", json={**SMALL, "seed": 12}).content
        np.testing.assert_allclose(decode(files[1])[0], decode(solo)[0], atol=2 / 32768)


@pytest.mark.parametrize("body, field, reason", [
    ({"seconds_total": 5.0}, "seconds_total", "<= 1"),
    ({"seconds_total": 0}, "seconds_total", "greater than 0"),
    ({"steps": 500}, "steps", "<= 20"),
    ({"steps": 0}, "steps", "greater than or equal to 1"),
    ({"batch_size": 3}, "batch_size", "<= 2"),
    ({"prompt": "x" * 65}, "prompt", "at most 64 characters"),
    ({"negative_prompt": "x" * 65}, "negative_prompt", "at most 64 characters"),
    ({"sampler": "nope"}, "sampler", "known: dpmpp, euler, pingpong, rk4"),
    ({"format": "mp3"}, "format", "'wav' or 'flac'"),
    ({"seed": -2}, "seed", "greater than or equal to -1"),
    ({"conditioning": {"mood": 1}}, "conditioning", "unknown conditioning keys"),
    ({"temperature": 1}, "temperature", "Extra inputs are not permitted"),
])
def test_limits_answer_422_with_the_reason(tiny_model, body, field, reason):
    with serve(tiny_model, max_batch=2, max_prompt_length=64) as client:
        for path in ("/v1/generate", "/v1/jobs"):
            res = client.post(path, json={**SMALL, **body})
            assert res.status_code == 422, res.text
            errors = res.json()["detail"]
            match = [e for e in errors if e["loc"][-1] == field]
            assert match and reason in match[0]["msg"], errors


def test_bearer_token_guards_the_api_when_configured(tiny_model):
    with serve(tiny_model, api_token="s3cret") as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            res = client.get("/v1/models", headers=headers)
            assert res.status_code == 401 and res.headers["www-authenticate"] == "Bearer"
            assert client.post("/v1/generate", json=SMALL, headers=headers).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert client.get("/v1/models", headers=ok).status_code == 200
        assert client.post("/v1/generate", json=SMALL, headers=ok).status_code == 200
        # probes, page and docs stay open
        assert all(client.get(p).status_code == 200 for p in ("/healthz", "/readyz", "/", "/docs"))
    with serve(tiny_model) as client:  # token unset: no auth
        assert client.get("/v1/models").status_code == 200


def test_full_queue_answers_503_with_retry_after(tiny_model, gate):
    with serve(tiny_model, queue_size=1, max_batch=1, warmup=False) as client:
        running = client.post("/v1/jobs", json={**SMALL, "seed": 1}).json()
        wait_job(client, running, until=("running",))
        queued = client.post("/v1/jobs", json={**SMALL, "seed": 2})
        assert queued.status_code == 202  # one item may wait
        for path in ("/v1/jobs", "/v1/generate"):
            full = client.post(path, json={**SMALL, "seed": 3})
            assert full.status_code == 503, full.text
            assert int(full.headers["retry-after"]) >= 1 and "queue is full" in full.json()["detail"]
        gate.set()
        assert wait_job(client, running)["status"] == "succeeded"
        assert wait_job(client, queued.json())["status"] == "succeeded"
        assert client.post("/v1/generate", json=SMALL).status_code == 200  # room again
        assert client.get("/v1/stats").json()["batcher"]["rejected"] == 2


def test_job_submit_poll_fetch_delete(tiny_model, gate):
    with serve(tiny_model, warmup=False) as client:
        res = client.post("/v1/jobs", json={**SMALL, "seed": 5, "batch_size": 2, "format": "flac"})
        assert res.status_code == 202 and res.headers["location"] == res.json()["status_url"]
        job = res.json()
        assert job["status"] in ("queued", "running") and job["params"]["seed"] == 5
        early = client.get(f"/v1/jobs/{job['id']}/audio")
        assert early.status_code == 409 and early.json()["status"] in ("queued", "running")
        gate.set()
        done = wait_job(client, job)
        assert done["status"] == "succeeded" and done["seeds"] == [5, 6] and done["outputs"] == 2
        for i, url in enumerate(done["audio_urls"]):
            audio = client.get(url)
            assert audio.status_code == 200 and audio.headers["content-type"] == "audio/flac"
            assert audio.headers["x-seed"] == str(5 + i)
            samples, rate = decode(audio.content)
            assert rate == SR and samples.shape == (2000, 1)
        assert client.get(f"/v1/jobs/{job['id']}/audio?index=2").status_code == 404
        assert client.get("/v1/jobs/not-a-job").status_code == 404
        assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
        assert client.get(job["status_url"]).status_code == 404


def test_concurrent_same_length_requests_share_one_model_call(tiny_model, count_calls):
    with serve(tiny_model, max_batch=4, batch_window_ms=5000, warmup=False) as client:
        seeds = [21, 22, 23, 24]
        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda s: client.post("/v1/generate", json={**SMALL, "seed": s}), seeds))
        assert [r.status_code for r in responses] == [200] * 4
        assert count_calls == [4]  # ONE model call for four requests (the group filled before the window)
        assert {r.headers["x-batch-items"] for r in responses} == {"4"}
        assert client.get("/v1/stats").json()["batcher"]["batch_sizes"] == {"4": 1}
    # each request's audio is what it would have been alone (per-item seeded noise)
    with serve(tiny_model, max_batch=1, warmup=False) as client:
        for seed, res in zip(seeds, responses, strict=True):
            solo = client.post("/v1/generate", json={**SMALL, "seed": seed})
            np.testing.assert_allclose(decode(res.content)[0], decode(solo.content)[0], atol=2 / 32768)
    assert count_calls == [4, 1, 1, 1, 1]


def test_requests_that_cannot_share_a_call_are_kept_apart(tiny_model, count_calls):
    with serve(tiny_model, max_batch=8, batch_window_ms=300, warmup=False) as client:
        bodies = [{**SMALL, "seed": 1}, {**SMALL, "seed": 2},
                  {**SMALL, "seconds_total": 0.25, "seed": 3},  # another length
                  {**SMALL, "steps": 4, "seed": 4}]  # other steps
        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda b: client.post("/v1/generate", json=b), bodies))
        assert all(r.status_code == 200 for r in responses)
        assert sorted(count_calls) == [1, 1, 2]
        count_calls.clear()
        stochastic = [{**SMALL, "sampler": "pingpong", "seed": s} for s in (1, 2)]
        with ThreadPoolExecutor(2) as pool:
            responses = list(pool.map(lambda b: client.post("/v1/generate", json=b), stochastic))
        assert all(r.status_code == 200 for r in responses)
        assert count_calls == [1, 1]  # stochastic samplers: one call per request, so seeds reproduce


def test_model_that_fails_to_load_is_reported_by_the_probes():
    settings = ServeSettings(model="/nonexistent/model.safetensors")
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 10
        while client.get("/readyz").json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "does not exist" in ready.json()["error"]
        assert client.get("/healthz").status_code == 503
        res = client.post("/v1/generate", json=SMALL)
        assert res.status_code == 503 and "retry-after" in res.headers


def test_settings_come_from_the_environment():
    env = {"SAO_MODEL": "models:/sat-dit@champion", "SAO_MAX_STEPS": "42", "SAO_API_TOKEN": "t",
           "SAO_WARMUP": "false", "SAO_BATCH_WINDOW_MS": "2.5"}
    settings = ServeSettings.from_env(env, max_batch=3)
    assert (settings.model, settings.max_steps, settings.api_token, settings.warmup) == \
        ("models:/sat-dit@champion", 42, "t", False)
    assert settings.batch_window_ms == 2.5 and settings.max_batch == 3 and settings.auth_enabled
    assert "t'" not in repr(settings)  # the token never appears in logs
    assert not ServeSettings.from_env({}).auth_enabled
    with pytest.raises(ValueError, match="SAO_MAX_STEPS"):
        ServeSettings.from_env({"SAO_MAX_STEPS": "many"})


def test_conditioners_without_a_request_field_take_values_from_conditioning():
    from stable_audio_ops.serving.model_loader import load_model

    from .conftest import REPO

    model = load_model(REPO / "tests" / "fixtures" / "parity" / "dit_cond", device="cpu")  # + bpm, genre
    with serve(model) as client:
        info = client.get("/v1/models").json()["data"][0]
        assert info["extra_conditioning"] == ["bpm", "genre"]
        missing = client.post("/v1/generate", json=SMALL)
        assert missing.status_code == 422 and "bpm, genre" in missing.json()["detail"][0]["msg"]
        res = client.post("/v1/generate", json={**SMALL, "conditioning": {"bpm": 120, "genre": "jazz"}})
        assert res.status_code == 200 and decode(res.content)[0].shape == (2000, info["audio_channels"])


def test_bf16_precision_setting_serves_audio_and_is_reported(tiny_model):
    assert ServeSettings.from_env({"SAO_PRECISION": "bf16"}).precision == "bf16"
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        ServeSettings.from_env({"SAO_PRECISION": "fp16"})
    with serve(tiny_model, precision="bf16") as client:
        assert client.get("/v1/models").json()["data"][0]["precision"] == "bf16"
        res = client.post("/v1/generate", json={**SMALL, "prompt": "flute", "seed": 3})
        assert res.status_code == 200, res.text
        audio, _ = decode(res.content)
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0
