"""The registered pyfunc: `predict` turns prompts into audio in Python and behind `mlflow models serve`."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_ops.evaluation.reconstruction import deterministic_latents
from stable_audio_ops.inference.entry import GENERATION_DEFAULTS, generate
from stable_audio_ops.tracking.loading import load_model
from stable_audio_ops.tracking.registry import log_model_to_registry, promote_if_better
from tests.tracking.tiny_models import QUIET_ENV, use_sqlite_store, write_tiny_models

BIN = Path(sys.executable).parent
ROW = {"prompt": "flute"}
PARAMS = {"seconds_total": 0.1, "steps": 2, "seed": 7}  # generation settings: params of the call (the signature)
PCM16_TOLERANCE = 2 / 32768  # the pyfunc returns 16-bit WAV: one quantisation step plus rounding


def _decode(prediction: dict) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(io.BytesIO(base64.b64decode(prediction["audio_wav_base64"])), dtype="float32")
    return audio, sr


@pytest.fixture
def registered(tmp_path, monkeypatch):
    uri = use_sqlite_store(tmp_path, monkeypatch)
    ae_path, ld_path = write_tiny_models(tmp_path / "m")
    ld = log_model_to_registry(ld_path, "ld")
    promote_if_better("ld", ld.version, {"kid": 1.0}, [{"metric": "kid", "mode": "min"}])
    log_model_to_registry(ae_path, "ae")
    return {"uri": uri, "ae": ae_path, "ld": ld_path}


def _generate_directly(path: Path, prompt: str, seconds: float, steps: int, seed: int) -> np.ndarray:
    """What the pyfunc should return, from the model file itself through the library's generate entry."""
    loaded = load_model(path)
    model = loaded.model
    num_samples = round(seconds * model.sample_rate)
    unit = int(model.min_input_length)
    with torch.inference_mode():
        audio = generate(model, loaded.model_type, steps=steps, cfg_scale=GENERATION_DEFAULTS.cfg_scale,
                         conditioning=[{"prompt": prompt, "seconds_start": 0.0, "seconds_total": seconds}],
                         batch_size=1, sample_size=-(-num_samples // unit) * unit, seed=seed, progress=False)
    return np.clip(audio[0, 0, :num_samples].float().numpy(), -1.0, 1.0)


def test_predict_generates_the_models_audio_from_prompts(registered):
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model("models:/ld@champion")
    out = model.predict([ROW, {"prompt": "organ"}], params=PARAMS)
    audio, sr = _decode(out[0])
    assert sr == 16000 and audio.shape == (1600,) and out[0]["seed"] == 7 and np.abs(audio).max() > 0
    # the audio is the model's own: the same prompt, seed, steps and default cfg_scale called directly
    expected = _generate_directly(registered["ld"], "flute", 0.1, steps=2, seed=7)
    np.testing.assert_allclose(audio, expected, rtol=0, atol=PCM16_TOLERANCE)
    organ, _ = _decode(out[1])
    assert out[1]["seed"] == 8  # the second row of a seeded call: seed + 1
    np.testing.assert_allclose(organ, _generate_directly(registered["ld"], "organ", 0.1, steps=2, seed=8),
                               rtol=0, atol=PCM16_TOLERANCE)
    assert np.abs(organ - audio).max() > 10 * PCM16_TOLERANCE  # the prompt and seed matter
    again, _ = _decode(model.predict([ROW], params=PARAMS)[0])
    np.testing.assert_array_equal(again, audio)  # same seed, same audio
    plain = model.predict([{"prompt": "piano"}], params={"steps": 2})  # no seconds_total: the training length
    assert plain[0]["num_samples"] == 512


def test_autoencoder_pyfunc_reconstructs_audio_as_the_model_does(registered):
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model("models:/ae@challenger")
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(4000) / 16000)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, tone, 16000, format="WAV", subtype="FLOAT")
    out = model.predict([{"audio_wav_base64": base64.b64encode(buffer.getvalue()).decode()}])
    audio, sr = _decode(out[0])
    assert sr == 16000 and audio.shape == tone.shape

    autoencoder = load_model(registered["ae"]).model
    with torch.inference_mode():
        prepared = autoencoder.preprocess_audio_list_for_encoder([torch.from_numpy(tone)[None]], 16000)
        decoded = autoencoder.decode(deterministic_latents(autoencoder, prepared))
    expected = np.clip(decoded[0, 0, : len(tone)].float().numpy(), -1.0, 1.0)
    assert np.abs(expected).max() > 10 * PCM16_TOLERANCE
    np.testing.assert_allclose(audio, expected, rtol=0, atol=PCM16_TOLERANCE)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations(registered, tmp_path):
    import mlflow.pyfunc

    port = _free_port()
    env = {**os.environ, **QUIET_ENV, "MLFLOW_TRACKING_URI": registered["uri"], "OMP_NUM_THREADS": "1",
           "PATH": f"{BIN}:{os.environ['PATH']}"}  # `mlflow models serve` execs uvicorn from PATH
    proc = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", "models:/ld@champion", "--env-manager",
                             "local", "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow models serve exited {proc.returncode}:\n{proc.stdout.read()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "mlflow models serve not up after 120 s"
            time.sleep(0.5)
        response = httpx.post(f"{base}/invocations", json={"dataframe_records": [ROW], "params": PARAMS},
                              timeout=60)
        assert response.status_code == 200, response.text
        served, sr = _decode(response.json()["predictions"][0])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    local, _ = _decode(mlflow.pyfunc.load_model("models:/ld@champion").predict([ROW], params=PARAMS)[0])
    assert sr == 16000
    np.testing.assert_allclose(served, local, atol=2 / 32768)


def test_predict_with_non_finite_audio_raises_instead_of_returning_it(registered):
    """Weights gone NaN (a diverged run that got registered): the pyfunc raises the library's error (the
    generate entry's check) instead of base64-encoding noise as a result."""
    import mlflow.pyfunc

    from stable_audio_ops.errors import NonFiniteOutputError

    model = mlflow.pyfunc.load_model("models:/ld@champion")
    with torch.no_grad():
        for param in model.unwrap_python_model().model.model.parameters():
            param.fill_(float("nan"))
    with pytest.raises(NonFiniteOutputError, match="non-finite audio"):
        model.predict([ROW])
