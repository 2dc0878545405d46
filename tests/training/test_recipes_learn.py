"""Guards that the shipped demo recipes *learn*, not just run.

The autoencoder recipe that landed first trained without error and was promoted, yet its output did not
depend on its input (every note came back as the same average spectrum). These tests train the real
recipe files from ``conf/base`` through the real training path (``run_training`` -> unwrap) on a handful
of demo notes, then ask what a user would: does each reconstruction keep its note's pitch, and do
different notes come back different? They fail on the old recipe (quiet render, discriminator taking
every other step): see docs/demo-recipe.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.data.preparation.demo_notes import render_demo_notes
from stable_audio_ops.evaluation.input_dependence import reconstruction_input_dependence
from stable_audio_ops.evaluation.pitch import acf_f0, pitch_accuracy
from stable_audio_ops.inference.pre_encode import load_autoencoder, pre_encode_dataset
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.options import TrainOptions
from stable_audio_ops.training.run import run_training
from stable_audio_ops.training.timesteps import noise_and_target
from stable_audio_ops.training.unwrap import unwrap_checkpoint

ROOT = Path(__file__).resolve().parents[2]
AE_RECIPE = ROOT / "conf" / "base" / "model_configs" / "autoencoder_demo.json"

# Six notes: three instruments of different families, two pitches each a fifth apart, one loudness.
NOTES = dict(instruments=["grand_piano", "flute", "church_organ"], midi_low=62, midi_high=69,
             velocities=(100,), progress=False)
PITCHES = (62, 69)
DIT_RECIPE = ROOT / "conf" / "base" / "model_configs" / "dit_demo.json"
AE_STEPS = 300
DIT_STEPS = 300


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The handful of demo notes (rendered with the data_preparation defaults, so at the shipped gain)."""
    out = tmp_path_factory.mktemp("notes")
    render_demo_notes(out / "all", **NOTES)
    keep = out / "audio"
    keep.mkdir()
    for row in map(json.loads, (out / "all" / "metadata.jsonl").read_text().splitlines()):
        if row["midi"] in PITCHES:
            for suffix in (".wav", ".json"):
                src = (out / "all" / row["path"]).with_suffix(suffix)
                (keep / src.name).write_bytes(src.read_bytes())
    return keep


def _clips(folder: Path) -> list[tuple[np.ndarray, dict]]:
    clips = []
    for wav in sorted(folder.glob("*.wav")):
        audio, _ = sf.read(wav, dtype="float32")
        clips.append((audio, json.loads(wav.with_suffix(".json").read_text())))
    return clips


@pytest.fixture(scope="module")
def trained_autoencoder(notes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped autoencoder recipe trained on the handful of notes, unwrapped (shared by both tests)."""
    torch.set_num_threads(1)
    tmp_path = tmp_path_factory.mktemp("ae")
    dataset = {"dataset_type": "audio_dir", "random_crop": True, "drop_last": True,
               "datasets": [{"id": "notes", "path": str(notes)}]}
    (tmp_path / "dataset.json").write_text(json.dumps(dataset))
    options = TrainOptions(model_config=str(AE_RECIPE), dataset_config=str(tmp_path / "dataset.json"),
                           batch_size=6, num_workers=0, logger="none", save_dir=str(tmp_path / "ckpt"),
                           checkpoint_every=10_000, precision="32", max_steps=AE_STEPS, seed=0)
    result = run_training(options)
    return unwrap_checkpoint(json.loads(AE_RECIPE.read_text()), result.checkpoint_path, tmp_path / "ae.safetensors")


def test_autoencoder_recipe_reconstructs_pitch_and_tells_notes_apart(notes: Path, trained_autoencoder: Path):
    config = json.loads(AE_RECIPE.read_text())
    model = load_autoencoder(config, trained_autoencoder)

    clips = _clips(notes)
    assert len(clips) == 6
    length = max(len(a) for a, _ in clips)
    length += (-length) % model.downsampling_ratio
    batch = torch.stack([torch.from_numpy(np.pad(a, (0, length - len(a)))) for a, _ in clips])[:, None]
    with torch.no_grad():
        latents, _ = model.encode(batch, return_info=True)
        recon = model.decode(latents)[:, 0, :length].numpy()
    sr = int(config["sample_rate"])

    f0s = [acf_f0(r[:sr], sr) for r in recon]
    pitch = pitch_accuracy(f0s, [meta["midi"] for _, meta in clips])
    assert pitch["accuracy"] >= 5 / 6, f"reconstructions lost their pitch: f0s {f0s}"

    dependence = reconstruction_input_dependence(list(recon), [a for a, _ in clips], sr)
    assert not dependence["collapsed"], dependence
    assert dependence["match_accuracy"] == 1.0, dependence  # six different notes, each found by its own input


def _dit_config(ae_config: dict, sample_size: int, latent_scale: float) -> dict:
    """The DiT recipe over this autoencoder, as the latent_diffusion pipeline builds it."""
    config = json.loads(DIT_RECIPE.read_text())
    model = config["model"]
    model["pretransform"]["config"] = ae_config["model"]
    model["pretransform"]["scale"] = latent_scale
    model["io_channels"] = model["diffusion"]["config"]["io_channels"] = int(ae_config["model"]["latent_dim"])
    config["sample_size"] = sample_size
    config["training"]["demo"]["demo_every"] = 10_000
    return config


def test_dit_recipe_uses_its_caption(notes: Path, trained_autoencoder: Path, tmp_path: Path):
    """A short DiT run on pre-encoded latents must predict better with each note's own caption than with
    another note's: a model that ignores its conditioning (the unconditional mean) cannot."""
    torch.set_num_threads(1)
    ae_config = json.loads(AE_RECIPE.read_text())
    autoencoder = load_autoencoder(ae_config, trained_autoencoder)
    dataset = validate_dataset_config({"dataset_type": "audio_dir", "random_crop": False, "drop_last": False,
                                       "datasets": [{"id": "notes", "path": str(notes),
                                                     "custom_metadata_module": "stable_audio_ops.data.sidecar_metadata"}]})
    sample_size = 24576
    encoded = pre_encode_dataset(autoencoder, ae_config, dataset, tmp_path / "latents", batch_size=6,
                                 sample_size=sample_size, num_workers=0, latent_mode="mean", seed=0,
                                 progress=False)
    assert encoded.count == 6
    latents = np.stack([np.load(p) for p in sorted(encoded.rank_dir.glob("*.npy"))])
    config = _dit_config(ae_config, sample_size, float(latents.std()))
    (tmp_path / "dit.json").write_text(json.dumps(config))
    (tmp_path / "latents.json").write_text(json.dumps(
        {"dataset_type": "pre_encoded", "random_crop": False, "drop_last": True,
         "datasets": [{"id": "latents", "path": str(tmp_path / "latents")}]}))
    options = TrainOptions(model_config=str(tmp_path / "dit.json"), dataset_config=str(tmp_path / "latents.json"),
                           batch_size=6, num_workers=0, logger="none", save_dir=str(tmp_path / "ckpt"),
                           checkpoint_every=10_000, precision="32", max_steps=DIT_STEPS, seed=0,
                           pretransform_ckpt_path=str(trained_autoencoder))
    result = run_training(options)
    unwrapped = unwrap_checkpoint(config, result.checkpoint_path, tmp_path / "dit.safetensors")
    model = create_model_from_config(config)
    model.load_state_dict(load_ckpt_state_dict(unwrapped))
    model.eval()

    metas = [json.loads(p.with_suffix(".json").read_text()) for p in sorted(encoded.rank_dir.glob("*.npy"))]
    x = torch.from_numpy(latents).float() / float(latents.std())
    captions = [{"prompt": m["prompt"], "seconds_total": m["seconds_total"]} for m in metas]
    shifted = captions[3:] + captions[:3]  # every note paired with another instrument's caption
    generator = torch.Generator().manual_seed(0)
    own, other = [], []
    with torch.no_grad():
        for t_value in (0.3, 0.5, 0.7, 0.9):
            t = torch.full((len(x),), t_value)
            noise = torch.randn(x.shape, generator=generator)
            noised, target = noise_and_target(x, t, "rectified_flow", noise=noise)
            for conds, out in ((captions, own), (shifted, other)):
                prediction = model(noised, t, cond=model.conditioner(conds, "cpu"), cfg_scale=1.0)
                out.append(torch.mean((prediction - target) ** 2).item())
    assert np.mean(own) < 0.9 * np.mean(other), f"loss with own caption {own} vs another's {other}"
