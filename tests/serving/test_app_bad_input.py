"""Inputs a fault-injection pass sent that used to crash the server (500 / reset connection): each is a 422
naming the field, and a request that cannot be encoded never reaches the batcher, so requests batched
alongside it are served as usual."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from tests.serving.test_app import SMALL, serve, wait_job


def post_raw(client, path: str, raw: str):
    """Send a body exactly as written: NaN / Infinity literals and lone surrogate escapes are valid for
    Python's json module (and many clients) but are refused by strict encoders such as httpx's."""
    return client.post(path, content=raw.encode(), headers={"Content-Type": "application/json"})


def body_with(field: str, literal: str) -> str:
    """``SMALL`` plus ``field`` set to a raw JSON literal (not re-encoded)."""
    base = {k: v for k, v in SMALL.items() if k != field}
    return json.dumps(base)[:-1] + f', "{field}": {literal}}}'


@pytest.mark.parametrize("field, literal", [
    ("seconds_total", "NaN"),
    ("seconds_total", "Infinity"),
    ("seconds_total", "-Infinity"),
    ("seconds_total", '"inf"'),
    ("seconds_total", '"nan"'),
    ("cfg_scale", "NaN"),
    ("cfg_scale", "Infinity"),
    ("steps", "NaN"),
    ("steps", "Infinity"),
    ("seed", "NaN"),
    ("batch_size", "Infinity"),
    ("prompt", '"\\ud800"'),
    ("negative_prompt", '"a \\udfff b"'),
    ("conditioning", '{"x": NaN}'),
])
def test_non_finite_numbers_and_unencodable_text_answer_422_naming_the_field(tiny_model, field, literal):
    with serve(tiny_model) as client:
        for path in ("/v1/generate", "/v1/jobs"):
            res = post_raw(client, path, body_with(field, literal))
            assert res.status_code == 422, res.text
            errors = res.json()["detail"]  # renders: no NaN or surrogate left in the JSON
            assert any(field in e["loc"] for e in errors), errors


def test_unencodable_prompt_does_not_fail_the_requests_batched_with_it(tiny_model):
    with serve(tiny_model, max_batch=4, batch_window_ms=300, warmup=False) as client:
        good = [json.dumps({**SMALL, "seed": s}) for s in (1, 2, 3)]
        bodies = [*good, body_with("prompt", '"\\ud800"')]
        with ThreadPoolExecutor(len(bodies)) as pool:
            responses = list(pool.map(lambda raw: post_raw(client, "/v1/generate", raw), bodies))
        assert [r.status_code for r in responses] == [200, 200, 200, 422], [r.text[:200] for r in responses]
        assert "prompt" in responses[-1].json()["detail"][0]["loc"]


def test_non_finite_audio_is_a_clear_error_never_a_response(monkeypatch):
    """A model whose weights went NaN (a diverged run that got registered): /v1/generate answers a 500 that
    says why and /v1/jobs reports the job failed with the same reason; no audio is returned."""
    from stable_audio_ops.serving.model_loader import load_model
    from tests.serving.conftest import FIXTURE_MODEL

    loaded = load_model(FIXTURE_MODEL, device="cpu")
    with torch.no_grad():
        for param in loaded.model.model.parameters():
            param.fill_(float("nan"))
    with serve(loaded, warmup=False) as client:
        res = client.post("/v1/generate", json=SMALL)
        assert res.status_code == 500 and "non-finite audio" in res.json()["detail"], res.text
        job = client.post("/v1/jobs", json=SMALL).json()
        view = wait_job(client, job)
        assert view["status"] == "failed" and "non-finite audio" in view["error"], view
        assert client.get(f"{job['status_url']}/audio").status_code == 409
