"""Export model weights from a training checkpoint; see `python unwrap_model.py --help`."""
import sys

from stable_audio_ops.cli.unwrap import main

sys.exit(main())
