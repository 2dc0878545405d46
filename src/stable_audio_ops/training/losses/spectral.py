"""Moved to :mod:`stable_audio_ops.losses.spectral`; this old import path is that same module object."""

import sys

from stable_audio_ops.losses import spectral as _moved

sys.modules[__name__] = _moved
