"""``python pre_encode.py`` / ``python -m stable_audio_ops.cli.pre_encode``: audio dataset -> latents on disk.

Upstream's ``pre_encode.py`` flags (``--model-config``, ``--ckpt-path``, ``--model-half``, ``--dataset-config``,
``--output-path``, ``--batch-size``, ``--sample-size``, ``--is-discrete``, ``--num-nodes``, ``--num-gpus``,
``--num-workers``, ``--strategy``, ``--limit-batches``, ``--shuffle``), e.g.
``python pre_encode.py --model-config vae_config.json --ckpt-path vae.safetensors
--dataset-config dataset.json --output-path latents/ --sample-size 24576 --batch-size 16``.
Writes ``<output>/<rank>/<ID>.npy`` + ``.json`` and ``<output>/details.json``; train on them with a
``"dataset_type": "pre_encoded"`` dataset config whose source ``path`` is the output folder.
Unless the dataset config sets ``drop_last``, every clip is encoded (the last partial batch too; the training
default, true, would drop it). Extra flags: ``--latent-mode mean`` stores the VAE posterior mean instead of one
sample, ``--seed`` makes the files reproducible (VAE sample, phase flip, crop), ``--no-progress`` hides the
progress bar.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stable_audio_ops.cli.help_format import HelpFormatter
from stable_audio_ops.cli.logs import configure_logging
from stable_audio_ops.config.dataset_config import read_dataset_config_json
from stable_audio_ops.errors import StableAudioOpsError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pre_encode.py", allow_abbrev=False, formatter_class=HelpFormatter,
                                description="Encode an audio dataset to autoencoder latents (.npy + .json).")
    p.add_argument("--model-config", required=True, help="autoencoder model config JSON")
    p.add_argument("--ckpt-path", required=True, help="unwrapped autoencoder checkpoint (.safetensors or .ckpt), "
                   "model folder, or models:/NAME@alias")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for models:/ checkpoints")
    p.add_argument("--model-half", action="store_true", help="run the autoencoder in float16")
    p.add_argument("--dataset-config", required=True, help="dataset config JSON (audio_dir / wds / s3)")
    p.add_argument("--output-path", required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=1, help="clips encoded at once")
    p.add_argument("--sample-size", type=int, default=1320960, help="pad/crop length in audio samples")
    p.add_argument("--is-discrete", action="store_true", help="save token indices instead of continuous latents")
    p.add_argument("--num-nodes", type=int, default=1, help="accepted for compatibility (ranks come from "
                   "the environment: torchrun / SLURM)")
    p.add_argument("--num-gpus", type=int, default=1, help="accepted for compatibility")
    p.add_argument("--num-workers", type=int, default=4, help="DataLoader worker processes (0 = read in this one)")
    p.add_argument("--strategy", default="auto", help="accepted for compatibility (no Lightning Trainer here)")
    p.add_argument("--limit-batches", type=int, default=None, help="stop after this many batches")
    p.add_argument("--shuffle", action="store_true", help="shuffle the dataset")
    p.add_argument("--latent-mode", choices=("sample", "mean"), default="sample",
                   help="VAE only: one posterior sample per clip (upstream) or the posterior mean")
    p.add_argument("--seed", type=int, default=None, help="seed of the VAE sample and of each clip's phase flip "
                   "and crop: the same inputs and seed write bitwise-same files")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("batch_size", "sample_size"):
        if getattr(args, name) < 1:
            build_parser().error(f"--{name.replace('_', '-')} must be >= 1")
    # The command's implementation loads torch: imported after argument parsing so --help and flag
    # errors answer at once (entry points are the one place project imports wait inside a function).
    from stable_audio_ops.inference.pre_encode import (
        AUTOENCODER_TYPES,
        pre_encode_dataset,
        pre_encoding_dataset_config,
    )
    from stable_audio_ops.tracking.loading import load_model

    configure_logging()
    try:
        dataset_config = pre_encoding_dataset_config(read_dataset_config_json(args.dataset_config),
                                                     args.dataset_config)
        loaded = load_model(args.ckpt_path, args.model_config, args.device, model_types=AUTOENCODER_TYPES,
                            purpose="pre-encoded", tracking_uri=args.tracking_uri)
        model, model_config = loaded.model, loaded.config
        if args.model_half:
            model = model.half()
        result = pre_encode_dataset(
            model, model_config, dataset_config, args.output_path, batch_size=args.batch_size,
            sample_size=args.sample_size, is_discrete=args.is_discrete, model_half=args.model_half,
            num_workers=args.num_workers, shuffle=args.shuffle, limit_batches=args.limit_batches,
            latent_mode=args.latent_mode, seed=args.seed, progress=not args.no_progress,
            model_config_path=args.model_config, dataset_config_path=args.dataset_config, args=vars(args))
    except StableAudioOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {result.count} latents {result.latent_shape} to {result.rank_dir}")
    if result.details_path is not None:
        print(f"details: {result.details_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
