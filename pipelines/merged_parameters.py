"""Write the parameters each pipeline runs with, as Kedro merges them, to files DVC tracks.

Why: DVC reads ``conf/base/parameters_<pipeline>.yml`` as plain YAML, so an override in ``conf/local`` (what the
README recommends for your own data folder) was invisible to it: ``dvc status`` said up to date and ``dvc repro``
skipped the stage. The ``parameters`` stage of ``dvc.yaml`` (``always_changed``) runs this first on every
``dvc repro``; each pipeline stage depends on its snapshot, so it re-runs exactly when its merged section changes
(base or local) and is skipped otherwise. ``kedro run --params`` overrides stay invisible to DVC, as before.

Usage: ``python -m pipelines.merged_parameters [OUTPUT_DIR]`` (default ``data/00_parameters``) from the project root.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml
from kedro.config import OmegaConfigLoader

from pipelines.settings import CONFIG_LOADER_ARGS
from stable_audio_ops.utils.io import write_text_atomic

# The sections DVC stages read: one snapshot file each (<section>.yml).
SECTIONS = ("data_preparation", "autoencoder", "latent_diffusion", "evaluation", "lm", "diffusion_uncond")
DEFAULT_OUTPUT = Path("data") / "00_parameters"


def merged_parameters(project: str | os.PathLike[str] = ".", env: str | None = None) -> dict[str, Any]:
    """All parameters as ``kedro run`` sees them: conf/base merged with the run environment (``KEDRO_ENV``, default
    ``local``) by the project's own OmegaConfigLoader settings."""
    loader = OmegaConfigLoader(conf_source=str(Path(project) / "conf"), env=env or os.environ.get("KEDRO_ENV"),
                               **CONFIG_LOADER_ARGS)
    return dict(loader["parameters"])


def write_snapshots(project: str | os.PathLike[str] = ".", output: str | os.PathLike[str] = DEFAULT_OUTPUT,
                    env: str | None = None) -> list[Path]:
    """``<output>/<section>.yml`` for each of :data:`SECTIONS` (keys sorted, so equal settings give equal bytes)."""
    params = merged_parameters(project, env)
    out = Path(project) / output
    written = []
    for section in SECTIONS:
        text = yaml.safe_dump({section: params.get(section)}, sort_keys=True, allow_unicode=True)
        written.append(write_text_atomic(out / f"{section}.yml", text))
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for path in write_snapshots(".", args[0] if args else DEFAULT_OUTPUT):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
