"""Pre-encoding a dataset: upstream's file layout, metadata, VAE sample vs mean, strict checkpoint loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_ops.config.dataset_config import DatasetConfig, validate_dataset_config
from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.inference.pre_encode import (
    encode_batch,
    load_autoencoder,
    pre_encode_dataset,
    pre_encode_training_set,
    pre_encoding_dataset_config,
)
from stable_audio_ops.models.checkpoints import save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config

FIXTURES = Path(__file__).parents[1] / "fixtures" / "configs"
AE_CONFIG = json.loads((FIXTURES / "autoencoder_tiny.json").read_text())


def make_audio_folder(root: Path, n: int = 5, seconds: float = 0.05, sr: int = 16000) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        t = np.arange(int(seconds * sr)) / sr
        sf.write(root / f"note{i}.wav", (0.5 * np.sin(2 * np.pi * (220 + 110 * i) * t)).astype(np.float32), sr)
        (root / f"note{i}.json").write_text(json.dumps({"caption": f"note number {i}", "midi": 60 + i}))
    return root


def make_ae_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    save_model_checkpoint(create_model_from_config(AE_CONFIG).state_dict(), path, model_config=AE_CONFIG)
    return path


def dataset_config(root: Path) -> dict:
    return {"dataset_type": "audio_dir", "random_crop": False,
            "datasets": [{"id": "notes", "path": str(root),
                          "custom_metadata_module": "stable_audio_ops.data.sidecar_metadata"}]}


def encoding_config(root: Path) -> DatasetConfig:
    """:func:`dataset_config` as pre-encoding reads it (validated; drop_last off since it does not set it)."""
    return pre_encoding_dataset_config(dataset_config(root), "ds.json")


def test_writes_upstreams_layout_with_latent_rate_padding_masks(tmp_path: Path) -> None:
    audio = make_audio_folder(tmp_path / "audio")
    model = load_autoencoder(AE_CONFIG, make_ae_checkpoint(tmp_path / "ae.safetensors"))
    result = pre_encode_dataset(model, AE_CONFIG, encoding_config(audio), tmp_path / "latents", batch_size=2,
                                sample_size=1024, num_workers=0, progress=False, model_config_path="ae.json",
                                args={"batch_size": 2})
    assert result.count == 5  # drop_last is off for pre-encoding: the last partial batch is kept
    files = sorted((tmp_path / "latents" / "0").glob("*.npy"))
    assert [f.stem for f in files] == ["0000000000000", "0000000000001", "0000000010000", "0000000010001",
                                       "0000000020000"]
    latent = np.load(files[0])
    assert latent.shape == (4, 128) and latent.dtype == np.float32
    md = json.loads(files[0].with_suffix(".json").read_text())
    # 0.05 s = 800 samples of 1024 are real -> 100 of 128 latent frames
    assert len(md["padding_mask"]) == 128 and sum(md["padding_mask"]) == 100
    assert md["prompt"].startswith("note number") and md["seconds_total"] == 1 and md["downsampling_ratio"] == 8
    details = json.loads((tmp_path / "latents" / "details.json").read_text())
    assert details["sample_size"] == 1024 and details["model_config"] == "ae.json"
    assert details["downsampling_ratio"] == 8 and details["args"] == {"batch_size": 2}
    assert not list((tmp_path / "latents").rglob("*.tmp"))


def test_vae_mean_is_deterministic_and_sample_is_seeded(tmp_path: Path) -> None:
    model = load_autoencoder(AE_CONFIG, make_ae_checkpoint(tmp_path / "ae.safetensors"))
    audio = torch.randn(2, 1, 256) * 0.3
    mean_a, mean_b = encode_batch(model, audio, "mean"), encode_batch(model, audio, "mean")
    assert torch.equal(mean_a, mean_b)
    torch.manual_seed(5)
    s1 = encode_batch(model, audio, "sample")
    torch.manual_seed(5)
    s2 = encode_batch(model, audio, "sample")
    assert torch.equal(s1, s2) and not torch.equal(s1, mean_a)
    assert torch.allclose(model.encode(audio, skip_bottleneck=True).chunk(2, dim=1)[0], mean_a)


def test_checkpoint_must_fit_the_config(tmp_path: Path) -> None:
    other = json.loads(json.dumps(AE_CONFIG))
    other["model"]["encoder"]["config"]["channels"] = 8
    torch.save({"state_dict": create_model_from_config(other).state_dict()}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_autoencoder(AE_CONFIG, tmp_path / "other.ckpt")


def test_training_set_covers_every_clip_and_is_summarized_from_the_folder(tmp_path: Path) -> None:
    """The training config's drop_last is overridden (every clip is encoded); the summary and the
    pre_encoded config are read back from what was written."""
    from stable_audio_ops.data.pre_encoded import pre_encoded_dataset_config, summarize_latents

    audio = make_audio_folder(tmp_path / "audio")
    ae = make_ae_checkpoint(tmp_path / "ae.safetensors")
    training = validate_dataset_config({**dataset_config(audio), "drop_last": True, "random_crop": True})
    result = pre_encode_training_set(ae, training, tmp_path / "latents", sample_size=1024, batch_size=2,
                                     num_workers=0, random_crop=False, latent_mode="mean", seed=0, progress=False)
    assert result.count == 5 and training.drop_last is True  # the caller's config is not modified
    summary = summarize_latents(tmp_path / "latents")
    stack = np.stack([np.load(f) for f in sorted((tmp_path / "latents").glob("*/*.npy"))])
    assert summary == {"count": 5, "latent_shape": [4, 128], "latent_std": pytest.approx(float(stack.std())),
                       "latent_mean": pytest.approx(float(stack.mean())), "downsampling_ratio": 8,
                       "latents_dir": str(tmp_path / "latents"), "autoencoder": str(ae)}
    config = pre_encoded_dataset_config(tmp_path / "latents", "notes_latents")
    assert config["dataset_type"] == "pre_encoded" and config["datasets"] == [
        {"id": "notes_latents", "path": str(tmp_path / "latents")}]


def test_same_inputs_and_seed_write_bitwise_identical_files(tmp_path: Path) -> None:
    """A re-run (e.g. `dvc repro` after a no-op change) must not change latents or sidecars: the phase flip
    and the VAE draw come from the seed, and no wall-clock value (``load_time``) is written."""
    import random

    audio = make_audio_folder(tmp_path / "audio", n=6)
    model = load_autoencoder(AE_CONFIG, make_ae_checkpoint(tmp_path / "ae.safetensors"))

    def encode(out: str, seed: int) -> dict[str, bytes]:
        random.seed(seed * 1000 + len(out))  # the global state must not matter
        pre_encode_dataset(model, AE_CONFIG, encoding_config(audio), tmp_path / out, batch_size=4, sample_size=1024,
                           num_workers=0, progress=False, latent_mode="sample", seed=seed)
        return {str(p.relative_to(tmp_path / out)): p.read_bytes()
                for p in sorted((tmp_path / out).rglob("*")) if p.is_file()}

    first, second = encode("a", seed=3), encode("b", seed=3)
    assert len(first) == 2 * 6 + 1 and first == second
    assert all("load_time" not in json.loads(data) for name, data in first.items() if name.endswith(".json"))
    assert encode("c", seed=4) != first  # the seed is used, not ignored


def _discrete_config(bottleneck: dict) -> dict:
    """The tiny autoencoder with a quantizing bottleneck instead of the VAE (4 latent channels)."""
    cfg = json.loads(json.dumps(AE_CONFIG))
    cfg["model"]["bottleneck"] = bottleneck
    cfg["model"]["encoder"]["config"]["latent_dim"] = 4
    return cfg


@pytest.mark.parametrize(("bottleneck", "token_shape"), [
    ({"type": "rvq", "config": {"dim": 4, "codebook_size": 16, "num_quantizers": 3, "kmeans_iters": 2}}, (128, 3)),
    ({"type": "dac_rvq", "config": {"input_dim": 4, "n_codebooks": 2, "codebook_size": 16, "codebook_dim": 2}},
     (2, 128)),
])
def test_is_discrete_writes_integer_tokens_with_frame_rate_padding_masks(tmp_path: Path, bottleneck: dict,
                                                                          token_shape: tuple[int, int]) -> None:
    cfg = _discrete_config(bottleneck)
    torch.manual_seed(0)
    model = create_model_from_config(cfg).eval()
    result = pre_encode_dataset(model, cfg, encoding_config(make_audio_folder(tmp_path / "audio")),
                                tmp_path / "tokens", batch_size=2, sample_size=1024, num_workers=0, progress=False,
                                is_discrete=True)
    assert result.count == 5
    first = sorted((tmp_path / "tokens" / "0").glob("*.npy"))[0]
    tokens = np.load(first)
    assert tokens.shape == token_shape and np.issubdtype(tokens.dtype, np.integer)
    assert 0 <= tokens.min() and tokens.max() < 16
    # the padding mask follows the 128 latent frames (not the codebook axis of a [T, Q] token array)
    md = json.loads(first.with_suffix(".json").read_text())
    assert len(md["padding_mask"]) == 128 and sum(md["padding_mask"]) == 100
    # the saved tokens decode like the model's own encode of that clip
    with torch.no_grad():
        latents = model.bottleneck.decode_tokens(torch.from_numpy(tokens)[None])
    assert latents.shape == (1, 4, 128)


def test_is_discrete_with_a_continuous_bottleneck_is_a_clear_error(tmp_path: Path) -> None:
    model = load_autoencoder(AE_CONFIG, make_ae_checkpoint(tmp_path / "ae.safetensors"))
    with pytest.raises(ConfigError, match="--is-discrete needs an autoencoder with a discrete"):
        encode_batch(model, torch.zeros(1, 1, 64), is_discrete=True)
