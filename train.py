"""Train a model (upstream-compatible entry point); see `python train.py --help`."""
import sys

from stable_audio_ops.cli.train import main

sys.exit(main())
