"""Moved to :mod:`stable_audio_ops.losses`; this package keeps the old import paths working.

``stable_audio_ops.training.losses.{core,spectral,stft}`` are the very module objects of
``stable_audio_ops.losses.{core,spectral,stft}`` (same classes, same private names), so old imports,
pickles and monkeypatches keep working. New code imports :mod:`stable_audio_ops.losses`.
"""

from stable_audio_ops.losses import (
    AuralossLoss,
    L1Loss,
    LossTerm,
    MSELoss,
    MultiLoss,
    MultiResolutionSTFTLoss,
    STFTLoss,
    SumAndDifferenceSTFTLoss,
    ValueLoss,
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
