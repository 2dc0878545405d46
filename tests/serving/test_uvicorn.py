"""The real thing: ``python -m stable_audio_ops.cli.serve`` under uvicorn on 127.0.0.1, spoken to over TCP."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import soundfile as sf

from .conftest import uvicorn_server

TOKEN = "uvicorn-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    # max_batch 1 / queue 1: the queue-full test can fill it with a few concurrent requests
    with uvicorn_server("--max-seconds", "1.0", "--max-steps", "60", "--max-batch", "1", "--queue-size", "1",
                        "--batch-window-ms", "0", env={"SAO_API_TOKEN": TOKEN}) as base:
        yield base


def test_happy_path_over_tcp(server):
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server}/readyz").json()["ready"] is True
    assert "swagger" in httpx.get(f"{server}/docs").text.lower()
    assert httpx.get(f"{server}/v1/models", headers=AUTH).json()["data"][0]["sample_rate"] == 16000
    res = httpx.post(f"{server}/v1/generate", headers=AUTH, timeout=60,
                     json={"prompt": "a tiny tone", "seconds_total": 0.5, "steps": 4, "seed": 3, "format": "flac"})
    assert res.status_code == 200 and res.headers["content-type"] == "audio/flac"
    info = sf.info(io.BytesIO(res.content))
    assert (info.samplerate, info.frames, info.channels) == (16000, 8000, 1)


def test_validation_and_auth_over_tcp(server):
    bad = httpx.post(f"{server}/v1/generate", headers=AUTH, json={"seconds_total": 3, "steps": 100})
    assert bad.status_code == 422
    assert {e["loc"][-1] for e in bad.json()["detail"]} == {"seconds_total", "steps"}
    assert httpx.post(f"{server}/v1/generate", json={"seconds_total": 0.1}).status_code == 401
    wrong = httpx.get(f"{server}/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"


def test_queue_full_over_tcp(server):
    body = {"seconds_total": 0.5, "steps": 40, "seed": 1}  # ~1 s of work each on one core

    def post(_):
        return httpx.post(f"{server}/v1/generate", headers=AUTH, json=body, timeout=120)

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(post, range(6)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) >= 2 and codes.count(503) >= 1, codes  # one running + one waiting; the rest refused
    refused = next(r for r in responses if r.status_code == 503)
    assert int(refused.headers["retry-after"]) >= 1 and "queue is full" in refused.json()["detail"]
    stats = httpx.get(f"{server}/v1/stats", headers=AUTH).json()
    assert stats["batcher"]["rejected"] >= codes.count(503) and stats["queued_items"] == 0
