"""Shared pieces for the serving tests: the tiny fixture model and a live uvicorn server."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE_MODEL = REPO / "tests" / "fixtures" / "parity" / "dit_latent_rf"


@pytest.fixture(scope="session")
def tiny_model():
    """The parity fixture (a real tiny DiT + autoencoder, seconds conditioning), loaded once."""
    from stable_audio_ops.serving.model_loader import load_model

    return load_model(FIXTURE_MODEL, device="cpu")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def uvicorn_server(*args: str, env: dict[str, str] | None = None, timeout: float = 90.0) -> Iterator[str]:
    """Start ``python -m stable_audio_ops.cli.serve`` on a free port; yield its base URL once /readyz is 200."""
    port = free_port()
    cmd = [sys.executable, "-m", "stable_audio_ops.cli.serve", "--model", str(FIXTURE_MODEL),
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{proc.stdout.read()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on {base} not ready after {timeout} s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
