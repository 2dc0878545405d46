"""One request the model cannot take fails alone: its batch-mates are retried without it and succeed.

The input passes validation but makes the real model call raise: the tiny text DiT gets an ``int``
conditioner ``bpm`` with ``min_val`` 60. Upstream (and this port, for checkpoint parity) indexes its
embedding table by the raw value, so 190 lies outside the 141 rows and the conditioner raises, inside
the batched call, for every request sharing it. Before retries, all five requests below got a 500.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.models.loading import LoadedModel
from stable_audio_ops.serving.app import create_app
from stable_audio_ops.serving.settings import ServeSettings
from tests.serving.test_app import wait_ready

CONFIG = Path(__file__).resolve().parents[1] / "fixtures" / "configs" / "dit_tiny.json"


@pytest.fixture(scope="module")
def bpm_model() -> LoadedModel:
    config = json.loads(CONFIG.read_text())
    config["model"]["conditioning"]["configs"].append(
        {"id": "bpm", "type": "int", "config": {"min_val": 60, "max_val": 200}})
    config["model"]["diffusion"]["cross_attention_cond_ids"].append("bpm")
    torch.manual_seed(0)
    model = create_model_from_config(config, "dit_tiny+bpm").eval().requires_grad_(False)
    return LoadedModel(model=model, config=config, name="dit_tiny_bpm", source=str(CONFIG), checkpoint=CONFIG,
                       device=torch.device("cpu"))


def test_a_request_that_breaks_the_model_call_fails_alone(bpm_model):
    # a long window and max_batch 5: the five requests share one call (the window closes when it is full)
    settings = ServeSettings(model="bpm", max_seconds=1.0, max_steps=20, max_batch=5, batch_window_ms=30000.0)
    bpms = [70, 80, 190, 90, 100]
    with TestClient(create_app(settings, loaded=bpm_model)) as client:
        wait_ready(client)

        def post(bpm: int):
            return client.post("/v1/generate", json={"prompt": "flute", "seconds_total": 0.02, "steps": 3,
                                                     "seed": bpm, "conditioning": {"bpm": bpm}})

        with ThreadPoolExecutor(len(bpms)) as pool:
            responses = dict(zip(bpms, pool.map(post, bpms), strict=True))
        stats = client.get("/v1/stats").json()["batcher"]

    bad = responses.pop(190)
    assert bad.status_code == 500
    assert bad.json()["detail"].startswith("generation failed: ValueError:")
    assert {bpm: r.status_code for bpm, r in responses.items()} == {70: 200, 80: 200, 90: 200, 100: 200}
    assert all(r.headers["content-type"] == "audio/wav" for r in responses.values())
    assert stats["batch_sizes"] == {"5": 1, "1": 5}  # the shared call, then each request alone
    assert stats["retried_alone"] == 5 and stats["failed_calls"] == 2
