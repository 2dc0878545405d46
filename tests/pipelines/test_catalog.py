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


PATH_KEYS = ("filepath", "folder", "run_dir", "model_filepath", "path")  # where the catalog's datasets write


def test_each_dvc_stage_declares_what_its_pipeline_writes_as_outs() -> None:
    """`dvc.yaml` mirrors the catalog: every file or folder a stage's pipeline saves is one of that stage's outs
    (or inside one), so DVC caches and restores all of it and nothing is written behind its back."""
    import yaml

    catalog = OmegaConfigLoader(str(REPO / "conf"), base_env="base", default_run_env="base")["catalog"]
    pipelines = register_pipelines()
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    checked, missing = 0, []
    for stage_name, stage in stages.items():
        if "--pipelines=" not in stage["cmd"]:
            continue
        outs = [next(iter(out)) if isinstance(out, dict) else out
                for key in ("outs", "metrics", "plots") for out in stage.get(key, [])]
        pipeline = pipelines[stage["cmd"].split("--pipelines=")[1].split()[0]]
        for name in sorted(pipeline.all_outputs()):
            for key in PATH_KEYS:
                path = str(catalog.get(name, {}).get(key, ""))
                if not path.startswith("data/"):
                    continue
                checked += 1
                if not any(path == out or path.startswith(out.rstrip("/") + "/") for out in outs):
                    missing.append(f"{stage_name}: {name}.{key} = {path}")
    assert checked > 20 and missing == []
