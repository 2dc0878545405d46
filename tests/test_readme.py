"""The README's model-type table lists every model type the factory builds (a new one must be documented)."""

from __future__ import annotations

import re
from pathlib import Path

from stable_audio_ops.models.factory import MODEL_TYPES

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_model_type():
    rows = re.findall(r"^\| `([a-z_]+)` \|", README.read_text(), flags=re.MULTILINE)
    assert sorted(set(MODEL_TYPES) & set(rows)) == sorted(MODEL_TYPES), f"README table rows: {rows}"
