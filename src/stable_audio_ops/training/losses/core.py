"""Moved to :mod:`stable_audio_ops.losses.core`; this old import path is that same module object."""

import sys

from stable_audio_ops.losses import core as _moved

sys.modules[__name__] = _moved
