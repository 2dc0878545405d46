"""Tiny, randomly initialised models for the registry / pyfunc / evaluation tests.

The diffusion model's pretransform is built from the same config as the tiny autoencoder and gets the
autoencoder's weights copied in, exactly as a latent diffusion model trained on that autoencoder
carries them, so lineage checks have a true positive.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from stable_audio_ops.models.checkpoints import save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config

REPO = Path(__file__).resolve().parents[2]
TINY_AE = REPO / "tests" / "fixtures" / "configs" / "autoencoder_tiny.json"
TINY_DIT = REPO / "tests" / "fixtures" / "configs" / "dit_tiny.json"
QUIET_ENV = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "KEDRO_DISABLE_TELEMETRY": "1",
             "DVC_NO_ANALYTICS": "1"}


def write_tiny_models(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """``autoencoder.safetensors`` and ``latent_diffusion.safetensors`` (configs embedded) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    ae_config = json.loads(TINY_AE.read_text())
    dit_config = json.loads(TINY_DIT.read_text())
    autoencoder = create_model_from_config(ae_config)
    diffusion = create_model_from_config(dit_config)
    diffusion.pretransform.model.load_state_dict(autoencoder.state_dict())
    ae_path = save_model_checkpoint(autoencoder.state_dict(), folder / "autoencoder.safetensors", ae_config)
    dit_path = save_model_checkpoint(diffusion.state_dict(), folder / "latent_diffusion.safetensors", dit_config)
    return Path(ae_path), Path(dit_path)


def perturbed_copy(path: Path, out: Path, scale: float = 0.01, seed: int = 1) -> Path:
    """The same model with slightly different weights (a "retrained" version)."""
    from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, read_embedded_model_config

    generator = torch.Generator().manual_seed(seed)
    state = {k: (v + scale * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v)
             for k, v in load_ckpt_state_dict(path).items()}
    return Path(save_model_checkpoint(state, out, read_embedded_model_config(path)))


def use_sqlite_store(tmp_path: Path, monkeypatch) -> str:
    """Point MLflow (tracking + registry) at a fresh sqlite store in ``tmp_path``; returns its URI."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    import mlflow

    # MLflow keeps both URIs in module globals and env vars: restore them after the test so other tests
    # (which rely on the registry following the tracking URI) do not inherit this store.
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    for key, value in QUIET_ENV.items():
        monkeypatch.setenv(key, value)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)  # setenv (not delenv) so teardown removes what MLflow sets
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("tests", artifact_location=str(tmp_path / "artifacts"))
    mlflow.set_experiment(experiment_id=experiment)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return uri
