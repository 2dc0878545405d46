"""The generate command line: files, formats, batch naming, seeds, latents, progress bar and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_ops.cli.generate import main, output_paths
from stable_audio_ops.models.checkpoints import save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config

CONFIG = json.loads((Path(__file__).parents[1] / "fixtures" / "configs" / "dit_tiny.json").read_text())


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model_from_config(CONFIG)
    with torch.no_grad():  # perturb the zero-initialised branches, so outputs depend on the prompt
        for p in model.model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = tmp_path_factory.mktemp("model") / "dit.safetensors"
    save_model_checkpoint(model.state_dict(), path, model_config=CONFIG)
    return path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "stable_audio_ops.cli.generate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_writes_flac_per_batch_item_trimmed_to_seconds_total(model_path: Path, tmp_path: Path) -> None:
    result = _run("--model", str(model_path), "--prompt", "flute", "--seconds", "0.03", "--steps", "3",
                  "--batch-size", "2", "--seed", "1", "-o", "out.flac", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sampling" in result.stderr  # tqdm progress bar
    for i in range(2):
        data, sr = sf.read(tmp_path / f"out_{i}.flac")
        assert sr == 16000 and data.shape == (480,) and np.isfinite(data).all()
    assert sf.info(str(tmp_path / "out_0.flac")).format == "FLAC"


def test_seed_reproducible_prompt_matters_and_latents(model_path: Path, tmp_path: Path) -> None:
    common = ["--model", str(model_path), "--steps", "3", "--seed", "7", "--seconds", "0.03", "--no-progress"]
    assert main([*common, "--prompt", "flute", "-o", str(tmp_path / "a.wav")]) == 0
    assert main([*common, "--prompt", "flute", "-o", str(tmp_path / "b.wav")]) == 0
    assert main([*common, "--prompt", "organ", "--cfg-scale", "3", "-o", str(tmp_path / "c.wav")]) == 0
    a, b, c = (sf.read(tmp_path / f"{n}.wav")[0] for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert sf.info(str(tmp_path / "a.wav")).subtype == "PCM_16"
    assert main([*common, "--prompt", "flute", "--precision", "bf16", "-o", str(tmp_path / "bf16.wav")]) == 0
    bf16 = sf.read(tmp_path / "bf16.wav")[0]
    assert not np.array_equal(bf16, a) and np.corrcoef(bf16, a)[0, 1] > 0.95  # bf16 rounding of the same audio
    assert main([*common, "--prompt", "piano", "--return-latents", "--sampler-type", "dpmpp-2m",
                 "-o", str(tmp_path / "lat.wav")]) == 0
    assert np.load(tmp_path / "lat.npy").shape == (4, 60)
    assert main([*common, "--prompt", "piano", "--negative-prompt", "flute", "--init-audio", str(tmp_path / "a.wav"),
                 "--init-noise-level", "0.5", "-o", str(tmp_path / "d.wav")]) == 0


def test_errors_are_reported_not_raised(model_path: Path, tmp_path: Path, capsys) -> None:
    assert main(["--model", str(model_path), "--prompt", "violin", "--steps", "2", "--seconds", "0.03",
                 "-o", str(tmp_path / "x.wav"), "--mask-start", "0", "--mask-end", "0.01"]) == 2
    assert "diffusion_cond_inpaint" in capsys.readouterr().err
    result = _run("--model", str(tmp_path / "missing.safetensors"), "-o", "x.wav", cwd=tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr
    with pytest.raises(ValueError, match=".wav or .flac"):
        output_paths("x.mp3", 1, False)


def test_lm_only_flags_are_refused_for_a_diffusion_model(model_path: Path, tmp_path: Path, capsys) -> None:
    assert main(["--model", str(model_path), "--prompt", "flute", "--steps", "2", "--seconds", "0.03",
                 "--top-k", "250", "--no-progress", "-o", str(tmp_path / "x.wav")]) == 2
    assert "this is a diffusion_cond model: --top-k is only for lm models" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize("flag, value, reason", [
    ("--cfg-scale", "nan", "finite"),
    ("--cfg-scale", "inf", "finite"),
    ("--cfg-scale", "-1", ">= 0"),
    ("--seconds", "-5", "> 0"),
    ("--seconds", "0", "> 0"),
    ("--seconds", "nan", "finite"),
    ("--seconds", "inf", "finite"),
    ("--seconds-total", "nan", "finite"),
    ("--seconds-start", "-1", ">= 0"),
    ("--steps", "0", ">= 1"),
    ("--steps", "2.5", "integer"),
    ("--batch-size", "0", ">= 1"),
    ("--sample-size", "-512", ">= 1"),
    ("--init-noise-level", "nan", "finite"),
    ("--cfg-rescale", "2", "<= 1"),
    ("--sigma-max", "inf", "finite"),
    ("--mask-end", "nan", "finite"),
])
def test_bad_numbers_are_argument_errors_naming_the_flag(flag: str, value: str, reason: str, tmp_path: Path,
                                                         capsys) -> None:
    out = tmp_path / "x.wav"
    with pytest.raises(SystemExit) as exit_info:  # argparse: parsed before any model is loaded
        main(["--model", "unused.safetensors", flag, value, "-o", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and reason in err, err
    assert not out.exists()


def test_nan_cfg_scale_writes_nothing_and_exits_2(model_path: Path, tmp_path: Path) -> None:
    result = _run("--model", str(model_path), "--seconds", "0.03", "--steps", "2", "--cfg-scale", "nan",
                  "-o", "x.wav", cwd=tmp_path)
    assert result.returncode == 2 and "argument --cfg-scale" in result.stderr, result.stderr
    assert not (tmp_path / "x.wav").exists()


def test_non_finite_audio_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    """Weights gone NaN (a diverged run): exit 2 with the reason, and no file of noise left behind."""
    model = create_model_from_config(CONFIG)
    with torch.no_grad():
        for p in model.model.parameters():
            p.fill_(float("nan"))
    path = tmp_path / "nan.safetensors"
    save_model_checkpoint(model.state_dict(), path, model_config=CONFIG)
    result = _run("--model", str(path), "--seconds", "0.03", "--steps", "2", "--no-progress", "-o", "x.wav",
                  cwd=tmp_path)
    assert result.returncode == 2 and "non-finite audio" in result.stderr, result.stderr
    assert not (tmp_path / "x.wav").exists()


def test_registry_model_defaults_to_the_project_store_and_never_creates_a_stray_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no mlflow/mlflow.db here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code = main(["--model", "models:/stable-audio-ops-latent-diffusion@champion", "-o", str(tmp_path / "x.wav")])
    err = capsys.readouterr().err
    assert code == 2 and "no MLflow store at mlflow/mlflow.db" in err and "--tracking-uri" in err
    assert not list(tmp_path.rglob("*.db")) and not (tmp_path / "x.wav").exists()


def test_adapter_flag_generates_what_the_merged_fine_tune_generates(model_path: Path, tmp_path: Path) -> None:
    """--adapter applies a LoRA adapter onto the base without merging: the audio is the merged model's, and
    differs from the base model's."""
    from stable_audio_ops.models.adapters import save_adapter
    from stable_audio_ops.models.loading import load_local_model
    from stable_audio_ops.models.lora import LoRAConfig, apply_lora, lora_state_dict, merge_lora

    fine_tuned = load_local_model(model_path).model
    config = LoRAConfig(rank=4, alpha=8, targets=("self_attn", "cross_attn", "ff"))
    apply_lora(fine_tuned, config)
    torch.manual_seed(1)
    with torch.no_grad():  # a trained adapter: B no longer zero
        for name, p in fine_tuned.named_parameters():
            if name.endswith("lora_B"):
                p.copy_(torch.randn_like(p) * 0.2)
    adapter = save_adapter(tmp_path / "adapter.safetensors", lora_state_dict(fine_tuned.state_dict()), config,
                           {"source": str(model_path), "weights_sha256": "test"})
    merged_path = tmp_path / "merged.safetensors"
    save_model_checkpoint(merge_lora(fine_tuned).state_dict(), merged_path, model_config=CONFIG)

    common = ["--steps", "3", "--seed", "7", "--seconds", "0.03", "--no-progress", "--prompt", "flute"]
    assert main(["--model", str(model_path), "--adapter", str(adapter), *common, "-o", str(tmp_path / "a.wav")]) == 0
    assert main(["--model", str(merged_path), *common, "-o", str(tmp_path / "m.wav")]) == 0
    assert main(["--model", str(model_path), *common, "-o", str(tmp_path / "b.wav")]) == 0
    with_adapter, merged, base = (sf.read(tmp_path / f"{n}.wav")[0] for n in "amb")
    assert np.abs(with_adapter - merged).max() <= 2 / 32768  # PCM_16: at most a rounding step apart
    assert np.abs(with_adapter - base).max() > 100 / 32768


def test_an_adapter_of_another_model_is_an_error_naming_the_file(model_path: Path, tmp_path: Path, capsys) -> None:
    from stable_audio_ops.models.adapters import save_adapter
    from stable_audio_ops.models.lora import LoRAConfig

    bogus = save_adapter(tmp_path / "other.safetensors", {"blocks.99.lora_A": torch.zeros(4, 8),
                                                          "blocks.99.lora_B": torch.zeros(8, 4)},
                         LoRAConfig(rank=4, alpha=8, targets=("ff",)), {"source": "x", "weights_sha256": "y"})
    code = main(["--model", str(model_path), "--adapter", str(bogus), "--steps", "2", "--seconds", "0.03",
                 "--no-progress", "--prompt", "flute", "-o", str(tmp_path / "x.wav")])
    assert code != 0 and not (tmp_path / "x.wav").exists()
    err = capsys.readouterr().err
    assert "other.safetensors: adapter does not fit this model" in err
