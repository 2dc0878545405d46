"""Pipeline discovery for a top-level `pipelines/` Kedro package.

Kedro's ``find_pipelines`` only scans ``<package>.pipelines.*``; here the package *is* ``pipelines``,
so every sub-package exposing ``create_pipeline()`` is registered under its folder name.
"""

from __future__ import annotations

import importlib
import pkgutil

from kedro.pipeline import Pipeline

import pipelines as _package

# Order of the default run: each pipeline consumes the previous one's outputs.
DEFAULT_ORDER = ("data_preparation", "autoencoder", "latent_diffusion", "evaluation")


def register_pipelines() -> dict[str, Pipeline]:
    found: dict[str, Pipeline] = {}
    for module_info in pkgutil.iter_modules(_package.__path__):
        if not module_info.ispkg:
            continue
        module = importlib.import_module(f"pipelines.{module_info.name}")
        if hasattr(module, "create_pipeline"):
            found[module_info.name] = module.create_pipeline()
    default = Pipeline([])
    for name in DEFAULT_ORDER:
        default += found.get(name, Pipeline([]))
    found["__default__"] = default
    return found
