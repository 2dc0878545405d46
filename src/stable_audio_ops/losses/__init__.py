"""Reconstruction losses, numerically equal to stable-audio-tools 0.0.20 (used by training and evaluation).

- :mod:`.stft`: the tight one-sided complex STFT and the K-weighting FIR prefilter;
- :mod:`.spectral`: ``STFTLoss``, ``MultiResolutionSTFTLoss``, ``SumAndDifferenceSTFTLoss``;
- :mod:`.core`: weighted terms over a shared info dict (``ValueLoss``, ``L1Loss``, ``MSELoss``,
  ``AuralossLoss``) and ``MultiLoss``, whose ``weight`` buffers give upstream's state-dict keys.

A package of its own, below models and training, so evaluation can score reconstructions with the
training loss without importing the training stack. ``stable_audio_ops.training.losses`` re-exports it.
"""

from stable_audio_ops.losses.core import (
    AuralossLoss,
    L1Loss,
    LossTerm,
    MSELoss,
    MultiLoss,
    ValueLoss,
)
from stable_audio_ops.losses.spectral import (
    MultiResolutionSTFTLoss,
    STFTLoss,
    SumAndDifferenceSTFTLoss,
)

__all__ = [
    "AuralossLoss",
    "L1Loss",
    "LossTerm",
    "MSELoss",
    "MultiLoss",
    "MultiResolutionSTFTLoss",
    "STFTLoss",
    "SumAndDifferenceSTFTLoss",
    "ValueLoss",
]
