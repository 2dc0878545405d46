"""``python unwrap_model.py`` / ``python -m stable_audio_ops.cli.unwrap``: training checkpoint -> model weights.

Same flags as upstream's ``unwrap_model.py``; the output is safetensors by default (``--ckpt`` writes a
``{"state_dict": ...}`` torch file instead) with the model config embedded, and it is verified to load
strictly into a model built from the config before it is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from stable_audio_ops.cli.help_format import HelpFormatter
from stable_audio_ops.cli.logs import configure_logging
from stable_audio_ops.config.model_config import load_model_config
from stable_audio_ops.errors import StableAudioOpsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unwrap_model.py", allow_abbrev=False, formatter_class=HelpFormatter,
                                     description="Export the model weights of a training checkpoint.")
    parser.add_argument("--model-config", default=None,
                        help="model config JSON (default: the config embedded in the checkpoint)")
    parser.add_argument("--ckpt-path", required=True, help="training (wrapped) checkpoint written by train.py")
    parser.add_argument("--name", default="exported_model", help="output file name without extension")
    parser.add_argument("--use-safetensors", action="store_true",
                        help="accepted for compatibility: safetensors is the default format here")
    parser.add_argument("--ckpt", action="store_true", help="write <name>.ckpt (torch) instead of safetensors")
    parser.add_argument("--output-dir", default=".", help="folder for the output file (default: current folder)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.ckpt and args.use_safetensors:
        build_parser().error("--ckpt and --use-safetensors contradict each other")
    # The command's implementation loads torch: imported after argument parsing so --help and flag
    # errors answer at once (entry points are the one place project imports wait inside a function).
    from stable_audio_ops.training.unwrap import unwrap_checkpoint

    configure_logging()

    try:
        model_config = load_model_config(args.model_config) if args.model_config else None
        out = unwrap_checkpoint(
            model_config,
            args.ckpt_path,
            Path(args.output_dir) / args.name,
            use_safetensors=not args.ckpt,
            source=args.model_config or "<embedded model config>",
        )
    except StableAudioOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
