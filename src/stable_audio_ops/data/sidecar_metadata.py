"""Ready-made ``custom_metadata_module``: per-file JSON sidecars (``<audio path minus extension>.json``).

Use it in a dataset config as ``"custom_metadata_module": "stable_audio_ops.data.sidecar_metadata"``.
The demo dataset writes one sidecar per clip (caption, instrument, midi note, ...); text
conditioning needs a ``prompt``, so ``caption`` is copied to ``prompt`` when no prompt is given.

Sidecar fields only add to the item's metadata: keys the dataset already computed (``path``,
``padding_mask``, ``seconds_total``, ...) are kept, because a stale or differently-meant value in a
sidecar (e.g. the clip's full duration) must not replace what describes the crop.
A file without a sidecar yields no extra fields; an unparsable sidecar raises ``ValueError``
naming it (the dataset then skips that file and counts it).
"""

from __future__ import annotations

import json
import os
from typing import Any


def sidecar_path(audio_path: str | os.PathLike[str]) -> str:
    """The sidecar next to ``audio_path``: same name, ``.json`` instead of the audio extension."""
    return os.path.splitext(os.fspath(audio_path))[0] + ".json"


def read_sidecar(audio_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Fields of the sidecar of ``audio_path`` ({} when there is none), with ``caption`` → ``prompt``."""
    path = sidecar_path(audio_path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON in metadata sidecar {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"metadata sidecar {path} must hold a JSON object, got {type(data).__name__}")
    if "prompt" not in data and isinstance(data.get("caption"), str):
        data["prompt"] = data["caption"]
    return data


def get_custom_metadata(info: dict, audio: Any) -> dict[str, Any]:
    """Custom metadata hook: the sidecar's fields that ``info`` does not already have."""
    fields = read_sidecar(info["path"])
    return {k: v for k, v in fields.items() if k not in info}
