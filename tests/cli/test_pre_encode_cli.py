"""`python pre_encode.py` (root shim) end to end: upstream's flags, output files, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.inference.test_pre_encode import AE_CONFIG, dataset_config, make_ae_checkpoint, make_audio_folder

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / "pre_encode.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_pre_encode_cli_writes_latents_that_train_as_a_pre_encoded_dataset(tmp_path: Path) -> None:
    audio = make_audio_folder(tmp_path / "audio", n=3)
    make_ae_checkpoint(tmp_path / "ae.safetensors")
    (tmp_path / "ae.json").write_text(json.dumps(AE_CONFIG))
    (tmp_path / "ds.json").write_text(json.dumps(dataset_config(audio)))
    result = _run("--model-config", "ae.json", "--ckpt-path", "ae.safetensors", "--dataset-config", "ds.json",
                  "--output-path", "latents", "--batch-size", "2", "--sample-size", "1024", "--num-workers", "0",
                  "--latent-mode", "mean", "--limit-batches", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote 2 latents (4, 128)" in result.stdout
    assert "pre-encoding" in result.stderr  # progress bar
    files = sorted((tmp_path / "latents" / "0").glob("*.npy"))
    assert len(files) == 2 and np.load(files[0]).shape == (4, 128)
    details = json.loads((tmp_path / "latents" / "details.json").read_text())
    assert details["args"]["latent_mode"] == "mean" and details["dataset_config"] == "ds.json"

    from stable_audio_ops.data.dataloader import create_dataloader_from_config

    loader = create_dataloader_from_config({"dataset_type": "pre_encoded", "latent_crop_length": 64,
                                            "datasets": [{"id": "x", "path": str(tmp_path / "latents")}]},
                                           batch_size=2, sample_size=1, sample_rate=16000, num_workers=0)
    latents, metadata = next(iter(loader))
    assert latents.shape == (2, 4, 64) and metadata[0]["prompt"].startswith("note number")


def test_pre_encode_cli_errors_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "ae.json").write_text(json.dumps(AE_CONFIG))
    (tmp_path / "ds.json").write_text(json.dumps({"dataset_type": "audio_dir", "datasets": [{"id": "x"}]}))
    result = _run("--model-config", "ae.json", "--ckpt-path", "none.safetensors", "--dataset-config", "ds.json",
                  "--output-path", "out", cwd=tmp_path)
    assert result.returncode == 2 and "datasets[0].path" in result.stderr
    result = _run("--dataset-config", "ds.json", cwd=tmp_path)
    assert result.returncode == 2 and "--model-config" in result.stderr


def test_last_partial_batch_is_encoded_unless_the_config_drops_it(tmp_path: Path, capsys) -> None:
    from stable_audio_ops.cli.pre_encode import main

    audio = make_audio_folder(tmp_path / "audio", n=3)
    make_ae_checkpoint(tmp_path / "ae.safetensors")
    (tmp_path / "ae.json").write_text(json.dumps(AE_CONFIG))
    for drop_last, expected in ((None, 3), (True, 2)):
        config = dataset_config(audio) | ({} if drop_last is None else {"drop_last": drop_last})
        (tmp_path / "ds.json").write_text(json.dumps(config))
        out = tmp_path / f"latents_{drop_last}"
        assert main(["--model-config", str(tmp_path / "ae.json"), "--ckpt-path", str(tmp_path / "ae.safetensors"),
                     "--dataset-config", str(tmp_path / "ds.json"), "--output-path", str(out), "--batch-size", "2",
                     "--sample-size", "1024", "--num-workers", "0", "--no-progress"]) == 0
        assert len(list((out / "0").glob("*.npy"))) == expected, drop_last
