"""The Kedro catalog as kedro-viz draws it: every entry names a layer, and the layers form no cycle (kedro-viz
greys them all out when they do, e.g. with the autoencoder and the DiT both in `models` and the latents between)."""

from __future__ import annotations

from collections import defaultdict
from graphlib import TopologicalSorter
from pathlib import Path

from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline

from pipelines.pipeline_registry import register_pipelines

REPO = Path(__file__).resolve().parents[2]
LAYERS = {"raw", "intermediate", "primary", "feature", "model_input", "models", "model_output", "reporting"}


def catalog_layers() -> dict[str, str | None]:
    config = OmegaConfigLoader(str(REPO / "conf"), base_env="base", default_run_env="base")["catalog"]
    catalog = DataCatalog.from_config(config)
    return {name: (getattr(catalog[name], "metadata", None) or {}).get("kedro-viz", {}).get("layer")
            for name in config}


def test_every_catalog_entry_has_a_kedro_viz_layer() -> None:
    layers = catalog_layers()
    assert len(layers) > 20
    assert {name: layer for name, layer in layers.items() if layer not in LAYERS} == {}


def test_layers_follow_the_flow_without_a_cycle() -> None:
    layers = catalog_layers()
    parents: dict[str, set[str]] = defaultdict(set)  # dataset -> the datasets its node read
    for node in sum(register_pipelines().values(), Pipeline([])).nodes:  # every pipeline, as kedro-viz lists them
        for output in node.outputs:
            parents[output] |= set(node.inputs)

    def layered_ancestors(name: str, seen: set[str]) -> set[str]:
        found: set[str] = set()
        for parent in parents[name] - seen:
            seen.add(parent)
            found |= {layers[parent]} if layers.get(parent) else layered_ancestors(parent, seen)
        return found

    depends = {layer: set() for layer in set(layers.values())}
    for name, layer in layers.items():
        depends[layer] |= layered_ancestors(name, {name}) - {layer}
    order = list(TopologicalSorter(depends).static_order())  # raises CycleError on a cycle
    assert order.index("primary") < order.index("feature") < order.index("models") < order.index("reporting")
