"""Judge autoencoder checkpoints the way the recipe search does: pitch, instrument probe and KID.

For each checkpoint (a Lightning ``.ckpt`` of ``train.py`` or an unwrapped state dict) it reconstructs
48 notes of the test split of a prepared demo folder twice, from a VAE sample and from the posterior mean
(the latents the DiT trains on), and prints both next to the real notes' own scores:

    .venv/bin/python benchmarks/recipe_search/judge_checkpoints.py benchmarks/recipe_search/ae_gan.json \\
        runs/gan/epoch=14-step=1200.ckpt runs/gan/epoch=22-step=1800.ckpt

Results: docs/demo-recipe.md ("Where the instrument error is").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from stable_audio_ops.evaluation.distribution import distribution_distances
from stable_audio_ops.evaluation.embeddings import AisfxEmbedder
from stable_audio_ops.evaluation.pitch import acf_f0, pitch_accuracy
from stable_audio_ops.evaluation.probe import fit_caption_probe, probe_accuracy
from stable_audio_ops.models.factory import create_model_from_config

SAMPLE_RATE = 16000


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model_config")
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--notes", default="data/01_raw/demo_notes", help="folder with metadata.jsonl + audio/")
    p.add_argument("--split", default="data/03_primary/split.json", help="data_preparation's split manifest")
    p.add_argument("--test-clips", type=int, default=48)
    p.add_argument("--probe-clips", type=int, default=20, help="real train clips per instrument for the probe")
    return p.parse_args()


def load_autoencoder(config: dict, checkpoint: str) -> torch.nn.Module:
    """The autoencoder of a training checkpoint (``autoencoder.*`` keys) or of a bare state dict, strictly."""
    model = create_model_from_config(config)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    prefix = "autoencoder."
    own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)} or state
    model.load_state_dict(own, strict=True)
    return model.eval()


def main() -> None:
    a = parse_args()
    torch.set_num_threads(1)
    root = Path(a.notes)
    side = json.loads(Path(a.split).read_text())["files"]
    meta = {r["id"]: r for r in map(json.loads, (root / "metadata.jsonl").read_text().splitlines())}
    clips = {i: sf.read(root / m["path"], dtype="float32")[0] for i, m in meta.items()}

    def in_split(name: str) -> list[str]:
        return sorted(i for i, m in meta.items() if side[f"{root.name}/{m['path']}"] == name)

    test_ids = list(np.random.default_rng(0).choice(in_split("test"), a.test_clips, replace=False))
    per_instrument: dict[str, list[str]] = {}
    for i in in_split("train"):
        per_instrument.setdefault(meta[i]["instrument"], []).append(i)
    probe_ids = [i for group in per_instrument.values() for i in group[: a.probe_clips]]
    embed = AisfxEmbedder()
    real = embed([(clips[i], SAMPLE_RATE) for i in probe_ids])
    probe = fit_caption_probe(real, [meta[i]["instrument"] for i in probe_ids])
    length = max(len(clips[i]) for i in test_ids)
    length += (-length) % 128
    audio = torch.stack([torch.from_numpy(np.pad(clips[i], (0, length - len(clips[i])))) for i in test_ids])[:, None]

    def judge(batch: torch.Tensor) -> dict[str, float]:
        emb = embed([(x[0, : len(clips[i])].numpy(), SAMPLE_RATE) for x, i in zip(batch, test_ids, strict=True)])
        f0s = [acf_f0(x[0, :SAMPLE_RATE].numpy(), SAMPLE_RATE) for x in batch]
        return {"pitch": round(pitch_accuracy(f0s, [meta[i]["midi"] for i in test_ids])["accuracy"], 3),
                "inst": round(probe_accuracy(probe, emb, [meta[i]["instrument"] for i in test_ids]), 3),
                "kid": round(distribution_distances(real, emb, subsets=50, subset_size=1000, seed=0)["kid"], 2)}

    print("real", judge(audio), flush=True)
    config = json.loads(Path(a.model_config).read_text())
    for checkpoint in a.checkpoints:
        model = load_autoencoder(config, checkpoint)
        with torch.no_grad():
            torch.manual_seed(0)
            sample = model.decode(model.encode(audio))[..., :length]
            mean = model.decode(model.encode(audio, skip_bottleneck=True).chunk(2, dim=1)[0])[..., :length]
        print(Path(checkpoint).name, "sample", judge(sample), "mean", judge(mean), flush=True)


if __name__ == "__main__":
    main()
