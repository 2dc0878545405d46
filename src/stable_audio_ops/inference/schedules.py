"""Moved to :mod:`stable_audio_ops.sampling.schedules`; this old import path is that same module object."""

import sys

from stable_audio_ops.sampling import schedules as _moved

sys.modules[__name__] = _moved
