"""Values as JSON can hold them: tensors / arrays -> lists, numpy scalars -> Python numbers, NaN -> null."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def to_jsonable(value: Any) -> Any:
    """Tensors/arrays -> lists, numpy scalars -> Python numbers, tuples -> lists; other objects -> str."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def finite_or_null(value: Any) -> Any:
    """Nested metrics with NaN/inf as None and numpy numbers as Python ones; other values unchanged.

    Why: a judge that cannot tell returns NaN, and strict JSON (DVC's metrics, ``json.dump(allow_nan=False)``)
    has no NaN; ``null`` keeps the key and says "no value".
    """
    if isinstance(value, Mapping):
        return {str(k): finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


__all__ = ["finite_or_null", "to_jsonable"]
