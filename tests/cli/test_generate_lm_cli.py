"""The generate command with an ``lm`` model: WAV output of the asked length, seeds, conditioning, lm flags, and
diffusion-only flags refused by name (the model is a tiny random lm over a tiny rvq autoencoder, saved the way
training's unwrap saves it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_ops.cli.generate import main
from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.checkpoints import save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config
from tests.models.lm_fixtures import DOWNSAMPLING, tiny_lm_config

CONFIG = tiny_lm_config()


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model_from_config(CONFIG)
    with torch.no_grad():  # a trained rvq's codebooks: a fresh one's are all zero until k-means runs on data
        for name, buffer in model.pretransform.named_buffers():
            if name.endswith("_codebook.embed"):
                buffer.normal_()
            elif name.endswith("_codebook.initted"):
                buffer.fill_(1)
    path = tmp_path_factory.mktemp("lm") / "lm.safetensors"
    save_model_checkpoint(model.state_dict(), path, model_config=CONFIG)
    return path


def test_the_command_writes_a_wav_per_item_of_the_asked_length(lm_path: Path, tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "stable_audio_ops.cli.generate", "--model", str(lm_path),
                             "--cond", "label=low", "--seconds", "0.004", "--batch-size", "2", "--seed", "3",
                             "--temperature", "0.8", "--top-k", "8", "--cfg-scale", "2", "-o", "out.wav"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for i in range(2):
        data, sr = sf.read(tmp_path / f"out_{i}.wav")
        # 0.004 s at 16 kHz = 64 samples = 8 code frames of 8 samples
        assert sr == 16000 and data.shape == (64,) and np.isfinite(data).all() and np.abs(data).max() > 0
    assert sf.info(str(tmp_path / "out_0.wav")).subtype == "PCM_16"


def test_seeded_runs_reproduce_and_seed_conditioning_and_sampling_flags_matter(lm_path: Path, tmp_path: Path) -> None:
    def run(name: str, *flags: str) -> np.ndarray:
        assert main(["--model", str(lm_path), "--max-gen-len", "10", "--no-progress", "-o", str(tmp_path / name),
                     *flags]) == 0
        return sf.read(tmp_path / name)[0]

    unguided = ["--cond", "label=low", "--cfg-scale", "1"]  # the default guidance 6 leaves a random lm near-greedy
    a = run("a.wav", *unguided, "--seed", "7")
    assert a.shape == (10 * DOWNSAMPLING,)
    assert np.array_equal(a, run("b.wav", *unguided, "--seed", "7"))
    assert not np.array_equal(a, run("c.wav", *unguided, "--seed", "8"))
    greedy_low = run("g1.wav", "--cond", "label=low", "--temperature", "0", "--seed", "1")
    assert np.array_equal(greedy_low, run("g2.wav", "--cond", "label=low", "--temperature", "0", "--seed", "2"))
    assert not np.array_equal(greedy_low, run("g3.wav", "--cond", "label=high", "--temperature", "0"))
    assert not np.array_equal(greedy_low, run("g4.wav", "--cond", "label=low", "--temperature", "0",
                                              "--cfg-scale", "1"))  # default guidance 6 vs none
    assert np.array_equal(run("p1.wav", *unguided, "--top-p", "0.5", "--seed", "4"),
                          run("p2.wav", *unguided, "--top-p", "0.5", "--seed", "4"))


@pytest.mark.parametrize("flags, named", [
    (["--steps", "10"], "--steps"),
    (["--sampler-type", "dpmpp-2m", "--negative-prompt", "x"], "--sampler-type, --negative-prompt are"),
    (["--precision", "fp32"], "--precision"),  # refused even at its default value: it was asked for
    (["--return-latents"], "--return-latents"),
])
def test_diffusion_only_flags_are_refused_by_name(lm_path: Path, tmp_path: Path, capsys, flags: list[str],
                                                  named: str) -> None:
    out = tmp_path / "x.wav"
    assert main(["--model", str(lm_path), "--cond", "label=low", "--max-gen-len", "4", "--no-progress",
                 "-o", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert f"this is a lm model: {named}" in err and "only for diffusion models" in err, err
    assert not list(tmp_path.iterdir())


def test_the_server_refuses_an_lm_model_at_load_naming_its_type(lm_path: Path) -> None:
    from stable_audio_ops.serving.model_loader import load_model

    with pytest.raises(ConfigError, match="'lm' cannot be served by the generation API; that needs one of: "
                                          "diffusion_cond, diffusion_cond_inpaint"):
        load_model(lm_path, device="cpu")
