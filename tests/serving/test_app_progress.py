"""What a client sees while a job runs (sampler step, ETA), its result's spectrogram, and defaults that come
from the served model (its training length, its demo prompts)."""

from __future__ import annotations

import copy
import dataclasses
import functools
import io
import threading
import time

import pytest
from PIL import Image

from stable_audio_ops.inference.entry import GENERATORS

from .test_app import SR, decode, serve, wait_job


@pytest.fixture
def pause_at_step(monkeypatch):
    """Hold the sampler after step 2 until ``event.set()``, so a client can watch a job mid-generation."""
    reached, release = threading.Event(), threading.Event()
    real = GENERATORS["diffusion_cond"]

    @functools.wraps(real)
    def paused(model, **kwargs):
        outer = kwargs["callback"]

        def callback(info):
            outer(info)
            if info["i"] == 1:
                reached.set()
                assert release.wait(30), "test never released the sampler"

        return real(model, **{**kwargs, "callback": callback})

    monkeypatch.setitem(GENERATORS, "diffusion_cond", paused)
    yield reached, release
    release.set()


def test_job_reports_sampler_step_and_eta_then_a_spectrogram(tiny_model, pause_at_step):
    reached, release = pause_at_step
    with serve(tiny_model, warmup=False) as client:
        job = client.post("/v1/jobs", json={"seconds_total": 0.125, "steps": 5, "seed": 3}).json()
        assert job["progress"] == "0/5" and job["eta_s"] is None
        assert reached.wait(30)
        time.sleep(0.05)
        running = client.get(job["status_url"]).json()
        assert running["status"] == "running" and running["progress"] == "2/5" and running["step"] == 2
        assert running["fraction"] == 0.4 and running["eta_s"] is not None and running["eta_s"] >= 0
        assert running["elapsed_s"] >= 0.05
        early = client.get(f"/v1/jobs/{job['id']}/spectrogram.png")
        assert early.status_code == 409 and early.json()["status"] == "running"
        release.set()
        done = wait_job(client, job)
        assert done["status"] == "succeeded" and done["progress"] == "5/5" and done["eta_s"] == 0.0
        picture = client.get(done["spectrogram_urls"][0])
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(picture.content)) as image:
            assert image.width >= 400
        assert client.get(f"/v1/jobs/{job['id']}/spectrogram.png?index=1").status_code == 404


def test_defaults_come_from_the_served_model(tiny_model):
    config = copy.deepcopy(tiny_model.config)
    config["training"] = {"demo": {"demo_steps": 30, "demo_cond": [{"prompt": "a flute playing G4, soft", "seconds_total": 2},
                                                 {"prompt": "a violin playing E4, loud", "seconds_total": 2}]}}
    model = dataclasses.replace(tiny_model, config=config)
    with serve(model, warmup=False) as client:
        entry = client.get("/v1/models").json()["data"][0]
        trained = config["sample_size"] / SR  # 512 samples: 0.032 s
        assert entry["sample_size"] == 512
        assert entry["defaults"]["seconds_total"] == pytest.approx(trained)
        assert entry["defaults"]["example_prompts"] == ["a flute playing G4, soft", "a violin playing E4, loud"]
        assert entry["defaults"]["demo_steps"] == 30  # what the page starts from; the API default stays 100
        audio = client.post("/v1/generate", json={"steps": 2, "seed": 1})  # no seconds_total: the trained length
        assert audio.status_code == 200 and decode(audio.content)[0].shape[0] == 512
    with serve(tiny_model, warmup=False) as client:  # no demo conditioning in the config: no examples
        defaults = client.get("/v1/models").json()["data"][0]["defaults"]
        assert defaults["example_prompts"] == [] and defaults["demo_steps"] is None
