"""Encode an audio dataset to autoencoder latents (upstream-compatible entry point); see `python pre_encode.py --help`."""
import sys

from stable_audio_ops.cli.pre_encode import main

sys.exit(main())
