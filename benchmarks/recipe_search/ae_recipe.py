"""Smallest experiments that separate "the autoencoder recipe is wrong" from "the code is wrong".

A bare training loop over the project's own model factory and spectral loss (no Lightning, no GAN, no
EMA), one change per flag, judged on held-out demo notes the way a user would look at them:
pitch of the reconstruction (ACF judge), whether reconstructions of different notes differ
(``recon_corr``: mean spectral correlation between different notes' reconstructions), whether they
follow their own input (``in_out_corr``, ``rms_corr``). Each run is an MLflow run (experiment
``demo-recipe-search``) so runs compare side by side in the MLflow UI.

    .venv/bin/python benchmarks/recipe_search/ae_recipe.py --notes data/01_raw/demo_notes --gain 1 --steps 300
    .venv/bin/python benchmarks/recipe_search/ae_recipe.py --notes /tmp/quiet_notes --gain 4 --save ae.pt

``--gain`` multiplies the audio (to test loudness without re-rendering); results: docs/demo-recipe.md.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from stable_audio_ops.evaluation.pitch import acf_f0, pitch_accuracy
from stable_audio_ops.losses.mel import MultiScaleMelLoss
from stable_audio_ops.losses.spectral import MultiResolutionSTFTLoss
from stable_audio_ops.models.factory import create_model_from_config

SAMPLE_RATE = 16000


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--notes", default="data/01_raw/demo_notes", help="folder with metadata.jsonl + audio/")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--gain", type=float, default=1.0, help="multiply every clip (loudness experiments)")
    p.add_argument("--bottleneck", default="vae", choices=["vae", "tanh", "none"])
    p.add_argument("--kl", type=float, default=1e-4)
    p.add_argument("--l1", type=float, default=0.0, help="time-domain L1 weight")
    p.add_argument("--perceptual", type=int, default=1, help="A-weighting prefilter in the STFT loss")
    p.add_argument("--mel", type=float, default=0.0, help="weight of a multi-scale log-mel L1 (absolute floor)")
    p.add_argument("--mel-start", type=int, default=0, help="step from which the mel term counts (loss_configs.mel.start_step)")
    p.add_argument("--loudness-norm", action="store_true",
                   help="divide each clip and its reconstruction by the clip's RMS before the spectral and mel losses, "
                        "so soft notes weigh as much as loud ones")
    p.add_argument("--fast", action="store_true", help="no residual-unit checkpointing, compiled Snake (same math)")
    p.add_argument("--decoder-options", default="{}", help='extra Oobleck decoder options as JSON, e.g. '
                   '\'{"use_nearest_upsample": true}\'')
    p.add_argument("--judge", action="store_true", help="also score instrument (aiSFX probe on real train clips)"
                   " and KID of the reconstructions at each evaluation")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--strides", default="4,4,8")
    p.add_argument("--c-mults", default="1,2,4")
    p.add_argument("--sample-size", type=int, default=8192)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="weights and batch draws (the held-out notes stay the same)")
    p.add_argument("--test-clips", type=int, default=24)
    p.add_argument("--save", default="", help="write {config, state_dict, gain, test_ids} here at each eval")
    p.add_argument("--tracking-uri", default="sqlite:///mlflow/mlflow.db")
    p.add_argument("--no-mlflow", action="store_true")
    return p.parse_args()


def model_config(a: argparse.Namespace) -> dict:
    strides = [int(s) for s in a.strides.split(",")]
    encoder_latent = a.latent * 2 if a.bottleneck == "vae" else a.latent
    oobleck = {"channels": a.channels, "c_mults": [int(c) for c in a.c_mults.split(",")], "strides": strides,
               "use_snake": True}
    model = {"encoder": {"type": "oobleck", "config": {"in_channels": 1, "latent_dim": encoder_latent, **oobleck}},
             "decoder": {"type": "oobleck", "config": {"out_channels": 1, "latent_dim": a.latent,
                                                       "final_tanh": False, **oobleck,
                                                       **json.loads(a.decoder_options)}},
             "latent_dim": a.latent, "downsampling_ratio": int(np.prod(strides)), "io_channels": 1}
    if a.bottleneck != "none":
        model["bottleneck"] = {"type": a.bottleneck}
    return {"model_type": "autoencoder", "sample_size": a.sample_size, "sample_rate": SAMPLE_RATE,
            "audio_channels": 1, "model": model}


def spectral_correlations(recon: torch.Tensor, real: torch.Tensor) -> tuple[float, float]:
    """(mean correlation between different clips' reconstructions, mean correlation of each with its input)."""
    def spectrum(s: torch.Tensor) -> torch.Tensor:
        mag = torch.stft(s[:, 0], 1024, 256, window=torch.hann_window(1024), return_complex=True).abs()
        return torch.log(mag.mean(-1) + 1e-5)

    def corr(a: torch.Tensor) -> torch.Tensor:
        a = a - a.mean(1, keepdim=True)
        a = a / a.norm(dim=1, keepdim=True)
        return a @ a.T

    n = recon.shape[0]
    between = corr(spectrum(recon))
    both = corr(torch.cat([spectrum(recon), spectrum(real)]))
    return float((between.sum() - between.diag().sum()) / (n * n - n)), float(both[:n, n:].diag().mean())


def main() -> None:
    a = parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    root = Path(a.notes)
    meta = {row["id"]: row for row in map(json.loads, (root / "metadata.jsonl").read_text().splitlines())}
    clips = {i: sf.read(root / m["path"], dtype="float32")[0] * a.gain for i, m in meta.items()}
    ids = sorted(clips)
    random.Random(0).shuffle(ids)
    test_ids, train_ids = ids[: a.test_clips], ids[a.test_clips:]

    cfg = model_config(a)
    model = create_model_from_config(cfg)
    if a.fast:
        from stable_audio_ops.models.blocks import use_compiled_snake
        from stable_audio_ops.models.oobleck import set_residual_checkpointing

        set_residual_checkpointing(model, False)
        use_compiled_snake(True)
    ffts = [1024, 512, 256, 128, 64]
    loss_fn = MultiResolutionSTFTLoss(sample_rate=SAMPLE_RATE, fft_sizes=ffts, hop_sizes=[f // 4 for f in ffts],
                                      win_lengths=ffts, perceptual_weighting=bool(a.perceptual))
    mel_loss = MultiScaleMelLoss(sample_rate=SAMPLE_RATE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.8, 0.99), weight_decay=1e-3)
    length = max(len(clips[i]) for i in test_ids)
    length += (-length) % model.downsampling_ratio
    test_audio = torch.stack([torch.from_numpy(np.pad(clips[i], (0, length - len(clips[i])))) for i in test_ids])[:, None]

    def batch() -> torch.Tensor:
        crops = []
        for _ in range(a.batch_size):
            x = clips[random.choice(train_ids)]
            start = random.randint(0, len(x) - a.sample_size)
            crops.append(x[start:start + a.sample_size])
        return torch.from_numpy(np.stack(crops))[:, None]

    judge = None
    if a.judge:
        from stable_audio_ops.evaluation.distribution import distribution_distances
        from stable_audio_ops.evaluation.embeddings import AisfxEmbedder
        from stable_audio_ops.evaluation.probe import fit_caption_probe, probe_accuracy

        embed = AisfxEmbedder()
        per_instrument: dict[str, list[str]] = {}
        for i in train_ids:
            per_instrument.setdefault(meta[i]["instrument"], []).append(i)
        probe_ids = [i for group in per_instrument.values() for i in group[:20]]
        real = embed([(clips[i], SAMPLE_RATE) for i in probe_ids])
        probe = fit_caption_probe(real, [meta[i]["instrument"] for i in probe_ids])

        def judge(recon: torch.Tensor) -> dict[str, float]:
            emb = embed([(r[0, : len(clips[i])].numpy(), SAMPLE_RATE) for r, i in zip(recon, test_ids, strict=True)])
            kid = distribution_distances(real, emb, subsets=50, subset_size=1000, seed=0)["kid"]
            return {"inst_acc": probe_accuracy(probe, emb, [meta[i]["instrument"] for i in test_ids]), "kid": kid}

    def evaluate() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            recon = model.decode(model.encode(test_audio))[..., :length]
            # the posterior mean (what the DiT is trained on, latent_mode: mean) without the VAE's sampling noise
            recon_mean = (model.decode(model.encode(test_audio, skip_bottleneck=True).chunk(2, dim=1)[0])[..., :length]
                          if a.bottleneck == "vae" else None)
        model.train()
        recon_corr, in_out_corr = spectral_correlations(recon, test_audio)
        f0s = [acf_f0(r[0, :SAMPLE_RATE].numpy(), SAMPLE_RATE) for r in recon]
        rms_recon = recon.pow(2).mean(-1).sqrt().flatten().numpy()
        rms_real = test_audio.pow(2).mean(-1).sqrt().flatten().numpy()
        extra = judge(recon) if judge is not None else {}
        if judge is not None and recon_mean is not None:
            extra.update({f"{k}_mean": v for k, v in judge(recon_mean).items()})
        return {**extra, "pitch_acc_acf": pitch_accuracy(f0s, [meta[i]["midi"] for i in test_ids])["accuracy"],
                "recon_corr": recon_corr, "in_out_corr": in_out_corr,
                "rms_corr": float(np.corrcoef(rms_recon, rms_real)[0, 1]), "rms_recon": float(rms_recon.mean()),
                "rms_real": float(rms_real.mean())}

    run = None
    if not a.no_mlflow:
        import mlflow

        mlflow.set_tracking_uri(a.tracking_uri)
        mlflow.set_experiment("demo-recipe-search")
        run = mlflow.start_run(run_name=f"ae gain={a.gain} bn={a.bottleneck} ch={a.channels} lr={a.lr}")
        mlflow.log_params({k: v for k, v in vars(a).items() if k not in ("tracking_uri", "no_mlflow", "save")})
    started = time.time()
    for step in range(1, a.steps + 1):
        x = batch()
        latents, info = model.encode(x, return_info=True)
        y = model.decode(latents)[..., : x.shape[-1]]
        xs, ys = x, y
        if a.loudness_norm:
            scale = x.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-3)
            xs, ys = x / scale, y / scale
        loss = loss_fn(ys, xs)
        if a.mel and step > a.mel_start:
            loss = loss + a.mel * mel_loss(ys, xs)
        if a.l1:
            loss = loss + a.l1 * (y - x).abs().mean()
        if "kl" in info:
            loss = loss + a.kl * info["kl"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % a.eval_every == 0 or step == a.steps:
            metrics = {"loss": loss.item(), "minutes": (time.time() - started) / 60, **evaluate()}
            print(step, json.dumps({k: round(v, 4) for k, v in metrics.items()}), flush=True)
            if run is not None:
                mlflow.log_metrics(metrics, step=step)
            if a.save:
                torch.save({"config": cfg, "state_dict": model.state_dict(), "gain": a.gain, "test_ids": test_ids},
                           a.save)
    if run is not None:
        mlflow.end_run()


if __name__ == "__main__":
    main()
