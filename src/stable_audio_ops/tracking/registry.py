"""MLflow model registry: register unwrapped models as pyfunc models, move aliases, load by alias.

Layout of a registered version (what ``models:/NAME@alias`` downloads): an MLflow pyfunc model folder
(``MLmodel``, the "models from code" file :mod:`stable_audio_ops.serving.pyfunc_model`) whose
``artifacts/`` hold the upstream-format ``model_config.json`` and ``model.safetensors`` (the unwrapped
weights, config also embedded), whose ``code/`` holds this package (so an environment built from the
version's requirements can run it), with a signature, an input example and a description
(:mod:`stable_audio_ops.tracking.model_card`). The MLflow 3 logged model belongs to the *training* run
(its source run; the version's run), and the evaluation metrics are attached to it by
:func:`promote_if_better`. So the same version serves three ways: ``mlflow models serve``, our
FastAPI server / generate command and :func:`stable_audio_ops.tracking.loading.load_model` in Python (which
looks into ``artifacts/``). :func:`download_registered_model` (one ``models:/`` URI -> a local folder +
registry facts) is how that loader resolves ``models:/`` sources. A fine-tune may instead register its LoRA
adapter alone, naming its base (:mod:`stable_audio_ops.tracking.adapter_versions`, same pyfunc, other artifacts:
:func:`log_pyfunc_version` is the part both share).

Aliases, not stages: every new version gets ``challenger``; :func:`promote_if_better` moves ``champion``
to it only when it beats the current champion on the chosen metrics (or there is none), and writes the
decision and its reason onto the version's tags. A version with blockers (failed promotion floors, a
collapsed autoencoder: :mod:`stable_audio_ops.tracking.floors`) is never promoted, champion or not. A
re-registration of identical weights (same tensor hash) returns the existing version instead of adding a
new one, so re-running the evaluation stage never spawns duplicate versions or steals ``challenger``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from stable_audio_ops.errors import CheckpointError, ConfigError
from stable_audio_ops.models.checkpoints import (
    load_ckpt_state_dict,
    read_embedded_model_config,
    save_model_checkpoint,
)
from stable_audio_ops.models.loading import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    LoadedModel,
    load_local_model,
    model_files_dir,  # noqa: F401 (old import path)
)
from stable_audio_ops.tracking import model_card
from stable_audio_ops.tracking.floors import blocked_reason
from stable_audio_ops.tracking.floors import finite_or_none as _finite
from stable_audio_ops.tracking.lineage import UNKNOWN, state_dict_sha256
from stable_audio_ops.tracking.store import check_sqlite_store

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
AUTOENCODER_MODEL_NAME = "stable-audio-ops-autoencoder"
DIFFUSION_MODEL_NAME = "stable-audio-ops-latent-diffusion"
EVAL_TAG_PREFIX = "eval."
# The pyfunc is a serving front end (it runs the serving Engine); the registry ships the file into every
# registered model (MLflow "models from code" copies it) without importing it.
PYFUNC_CODE = Path(__file__).resolve().parents[1] / "serving" / "pyfunc_model.py"
LOGGED_MODEL_URI = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]+)$")  # a version's source in MLflow 3
MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))?$")
DEFAULT_EXPERIMENT = "stable-audio-ops"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # stable_audio_ops/, shipped as the versions' code_paths
MODEL_DESCRIPTIONS = {
    "autoencoder": "stable-audio-ops autoencoder: audio <-> latents. Each version: model_config.json + "
                   "model.safetensors (stable-audio-tools format) in artifacts/; tags say which runs, commit and "
                   "data made it; aliases challenger (newest) and champion (promoted by the evaluation pipeline).",
    "diffusion": "stable-audio-ops latent diffusion model: audio from a text prompt and a duration. Each version: "
        "model_config.json + model.safetensors (stable-audio-tools format) in artifacts/, the autoencoder it "
        "was trained on in its tags; aliases challenger (newest) and champion (promoted by the evaluation pipeline).",
}


@dataclass
class RegisteredVersion:
    """One registered model version and how it came to be."""

    name: str
    version: str
    run_id: str | None
    weights_sha256: str
    model_type: str
    new: bool  # False when identical weights were already registered (that version is returned)
    aliases: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "uri": self.uri}


@dataclass
class RegistryModel:
    """A model loaded from the registry (any model type), in eval mode."""

    model: torch.nn.Module
    config: dict
    folder: Path
    facts: dict[str, Any]


def _client(tracking_uri: str | None = None):
    from mlflow.tracking import MlflowClient

    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    return MlflowClient()


def _read_unwrapped(path: Path, model_config: Mapping[str, Any] | None) -> tuple[dict, dict[str, torch.Tensor]]:
    if not path.is_file():
        raise CheckpointError(f"{path}: unwrapped model file not found (run the training pipeline first)")
    config = dict(model_config) if model_config is not None else read_embedded_model_config(path)
    if config is None:
        raise ConfigError(str(path), "", "no model config: the checkpoint embeds none and none was given")
    if "model_type" not in config:
        raise ConfigError(str(path), "model_type", "model config has no model_type")
    return config, load_ckpt_state_dict(path)


def _stage_model_files(path: Path, config: dict, state_dict: dict[str, torch.Tensor], folder: Path) -> None:
    """``model_config.json`` + ``model.safetensors`` (config embedded) in ``folder``."""
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2), encoding="utf-8")
    if path.suffix == ".safetensors":
        shutil.copyfile(path, folder / WEIGHTS_NAME)
    else:
        save_model_checkpoint(state_dict, folder / WEIGHTS_NAME, model_config=config)


def find_version_by_weights(name: str, weights_sha256: str, tracking_uri: str | None = None):
    """The registered version of ``name`` whose weights hash equals ``weights_sha256`` (newest), or None."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    matches = [v for v in versions if v.tags.get("weights_sha256") == weights_sha256]
    return max(matches, key=lambda v: int(v.version)) if matches else None


def _stage_package(folder: Path) -> Path:
    """A copy of the ``stable_audio_ops`` package (no caches) for ``code_paths``: the version then carries the
    code its pyfunc imports, and MLflow puts it on ``sys.path`` when it loads the model."""
    target = folder / PACKAGE_DIR.name
    shutil.copytree(PACKAGE_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def _source_run(client: Any, training_run_id: str | None) -> Any:
    """The training run a model is logged from, when the store knows it (None otherwise: the caller's run)."""
    from mlflow.exceptions import MlflowException

    if not training_run_id or training_run_id == UNKNOWN:
        return None
    try:
        return client.get_run(training_run_id)
    except MlflowException:
        log.warning("training run %s is not in this MLflow store; the model is logged from the current run",
                    training_run_id)
        return None


def existing_version(name: str, weights_sha256: str, model_type: str, tags: Mapping[str, str],
                     tracking_uri: str | None = None) -> RegisteredVersion | None:
    """The version of ``name`` already holding these weights (its tags updated with ``tags``), or None: so a
    re-run registers nothing new and moves no alias."""
    client = _client(tracking_uri)
    existing = find_version_by_weights(name, weights_sha256)
    if existing is None:
        return None
    for key, value in tags.items():
        client.set_model_version_tag(name, existing.version, key, value)
    return RegisteredVersion(name=name, version=str(existing.version), run_id=existing.run_id,
                             weights_sha256=weights_sha256, model_type=model_type, new=False,
                             aliases=list(getattr(existing, "aliases", []) or []))


def log_pyfunc_version(name: str, artifacts: Mapping[str, str | Path], *, model_type: str, config: Mapping[str, Any],
                       weights_sha256: str, tags: Mapping[str, str], description: str | None = None,
                       model_description: str | None = None, alias: str | None = CHALLENGER,
                       artifact_name: str | None = None, experiment: str = DEFAULT_EXPERIMENT,
                       tracking_uri: str | None = None, training_run_id: str | None = None) -> RegisteredVersion:
    """Log staged ``artifacts`` as the pyfunc of a new version of ``name`` and register it: the layout every
    version shares (signature and input example for ``config``, requirements, this package as code), tagged
    ``weights_sha256``, ``model_type`` and ``tags``, described, ``alias`` pointed at it. What the artifacts are
    (a full model, or an adapter naming its base) is the caller's; :mod:`~stable_audio_ops.serving.pyfunc_model`
    reads them by their keys."""
    import mlflow.pyfunc

    import mlflow

    client = _client(tracking_uri)
    source = _source_run(client, training_run_id)
    started_here = mlflow.active_run() is None
    if started_here:
        mlflow.set_experiment(experiment)
        mlflow.start_run(run_name=f"register-{name}")
    try:
        run_id = source.info.run_id if source is not None else mlflow.active_run().info.run_id
        experiment_id = source.info.experiment_id if source is not None else mlflow.active_run().info.experiment_id
        model_name = artifact_name or name.replace("-", "_")
        logged = mlflow.initialize_logged_model(name=model_name, source_run_id=run_id, model_type=model_type,
                                                experiment_id=experiment_id)
        with tempfile.TemporaryDirectory(prefix="sao-register-code-") as tmp:
            info = mlflow.pyfunc.log_model(
                name=model_name,
                model_id=logged.model_id,
                python_model=str(PYFUNC_CODE),
                artifacts={key: str(value) for key, value in artifacts.items()},
                code_paths=[str(_stage_package(Path(tmp)))],
                pip_requirements=model_card.pip_requirements(),
                signature=model_card.model_signature(model_type),
                input_example=model_card.input_example(model_type, config),
                registered_model_name=name,
                metadata={"model_type": model_type, "weights_sha256": weights_sha256},
            )
    finally:
        if started_here:
            mlflow.end_run()
    version = str(info.registered_model_version)
    for key, value in {"weights_sha256": weights_sha256, "model_type": model_type, **tags}.items():
        client.set_model_version_tag(name, version, key, str(value))
    client.update_model_version(name, version,
                                description=description or model_card.version_description(model_type, config, run_id))
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=model_description or MODEL_DESCRIPTIONS.get(
            model_type, MODEL_DESCRIPTIONS["diffusion"]))
    aliases = []
    if alias:
        client.set_registered_model_alias(name, alias, version)
        aliases.append(alias)
    return RegisteredVersion(name=name, version=version, run_id=run_id, weights_sha256=weights_sha256,
                             model_type=model_type, new=True, aliases=aliases)


def log_model_to_registry(unwrapped_path: str | Path, name: str, *, model_config: Mapping[str, Any] | None = None,
                          tags: Mapping[str, Any] | None = None, description: str | None = None,
                          alias: str | None = CHALLENGER, artifact_name: str | None = None,
                          experiment: str = DEFAULT_EXPERIMENT, tracking_uri: str | None = None,
                          reuse_identical: bool = True, training_run_id: str | None = None) -> RegisteredVersion:
    """Register an unwrapped model (``.safetensors`` / ``.ckpt``) as a new version of ``name``.

    Logs an MLflow pyfunc model (signature, input example, requirements, this package as code) from the
    training run ``training_run_id`` when the store has it (else from the active run, or a new run in
    ``experiment``), registers it, tags the version (``weights_sha256``, ``model_type``, ``source_path`` and
    ``tags``), describes it (``description`` or :func:`~stable_audio_ops.tracking.model_card.version_description`)
    and points ``alias`` (default ``challenger``) at it. With ``reuse_identical`` an already registered
    version holding the same weights is returned unchanged (``new=False``; its tags are updated with ``tags``).
    """
    path = Path(unwrapped_path)
    config, state_dict = _read_unwrapped(path, model_config)
    weights_sha = state_dict_sha256(state_dict)
    model_type = str(config["model_type"])
    extra_tags = {k: str(v) for k, v in (tags or {}).items()}
    if reuse_identical and (existing := existing_version(name, weights_sha, model_type, extra_tags,
                                                         tracking_uri)) is not None:
        return existing
    with tempfile.TemporaryDirectory(prefix="sao-register-") as tmp:
        staged = Path(tmp)
        _stage_model_files(path, config, state_dict, staged)
        return log_pyfunc_version(name, {"model_config": staged / CONFIG_NAME, "weights": staged / WEIGHTS_NAME},
                                  model_type=model_type, config=config, weights_sha256=weights_sha,
                                  tags={"source_path": str(path), **extra_tags}, description=description,
                                  alias=alias, artifact_name=artifact_name, experiment=experiment,
                                  tracking_uri=tracking_uri, training_run_id=training_run_id)


# --------------------------------------------------------------------------- promotion


@dataclass(frozen=True)
class Criterion:
    """One promotion criterion: ``metric`` compared with ``mode`` (``max``/``min``); differences up to
    ``min_delta`` count as a tie and defer to the next criterion."""

    metric: str
    mode: str = "max"
    min_delta: float = 0.0

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | str, source: str = "promotion rule") -> Criterion:
        if isinstance(raw, str):
            raw = {"metric": raw}
        mode = str(raw.get("mode", "max"))
        if mode not in ("max", "min"):
            raise ConfigError(source, f"{raw.get('metric')}.mode", f"mode must be 'max' or 'min', got {mode!r}")
        if "metric" not in raw:
            raise ConfigError(source, "metric", "each criterion needs a metric name")
        return cls(metric=str(raw["metric"]), mode=mode, min_delta=float(raw.get("min_delta", 0.0)))


def compare(challenger: Mapping[str, Any], champion: Mapping[str, Any],
            criteria: Sequence[Criterion]) -> tuple[bool, str]:
    """Lexicographic comparison with tolerances: (challenger wins?, the reason in words).

    The first criterion whose difference exceeds its ``min_delta`` decides. A challenger without a finite
    value never wins that criterion; a champion without one loses it. All ties keep the champion.
    """
    notes = []
    for c in criteria:
        new, old = _finite(challenger.get(c.metric)), _finite(champion.get(c.metric))
        if new is None:
            return False, f"challenger has no finite {c.metric}; champion kept"
        if old is None:
            return True, f"champion has no recorded {c.metric}; challenger {c.metric}={new:.4g}"
        gain = (new - old) if c.mode == "max" else (old - new)
        better = "higher" if c.mode == "max" else "lower"
        if gain > c.min_delta:
            return True, f"{c.metric} {new:.4g} vs champion {old:.4g} ({better} is better, margin {c.min_delta:g})"
        if gain < -c.min_delta:
            return False, f"{c.metric} {new:.4g} vs champion {old:.4g} ({better} is better); champion kept"
        notes.append(f"{c.metric} tie ({new:.4g} vs {old:.4g}, margin {c.min_delta:g})")
    return False, "; ".join(notes + ["no criterion decided; champion kept"])


def recorded_metrics(version: Any) -> dict[str, float]:
    """Evaluation metrics stored on a model version's tags (``eval.<metric>``)."""
    out = {}
    for key, value in (version.tags or {}).items():
        if key.startswith(EVAL_TAG_PREFIX):
            number = _finite(value)
            out[key[len(EVAL_TAG_PREFIX):]] = number if number is not None else float("nan")
    return out


def _attach_metrics_to_logged_model(client: Any, name: str, version: str, metrics: Mapping[str, Any]) -> None:
    """Log the finite ``metrics`` onto the MLflow 3 logged model behind the version (its page then lists them
    beside the training run's), under the active run (the evaluation) or else the model's source run.
    Versions registered before logged models existed have none: nothing to attach to."""
    import mlflow

    source = str(client.get_model_version(name, version).source or "")
    match = LOGGED_MODEL_URI.match(source)
    finite = {k: number for k, v in metrics.items() if (number := _finite(v)) is not None}
    if match is None or not finite:
        return
    model_id = match["model_id"]
    active = mlflow.active_run()
    run_id = active.info.run_id if active is not None else client.get_logged_model(model_id).source_run_id
    mlflow.log_metrics(finite, run_id=run_id, model_id=model_id)


def promote_if_better(name: str, version: str | int, metrics: Mapping[str, Any],
                      criteria: Sequence[Mapping[str, Any] | str | Criterion], *,
                      blockers: Sequence[str] = (), tracking_uri: str | None = None) -> dict[str, Any]:
    """Record ``metrics`` on the version and move ``champion`` to it if it beats the current champion.

    ``blockers`` (failed floors and the like, in words) veto the promotion whatever the comparison says,
    also when there is no champion yet; the reason then starts with ``"not promoted: "`` and lists them.
    Returns the decision (``promoted``, ``reason``, ``blockers``, ``champion_version`` before/after, the
    compared metrics); the same facts are written as version tags ``promotion_decision`` /
    ``promotion_reason``.
    """
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    version = str(version)
    rule = [c if isinstance(c, Criterion) else Criterion.parse(c) for c in criteria]
    if not rule:
        raise ConfigError("promotion rule", "criteria", "at least one criterion is needed")
    for key, value in metrics.items():
        number = _finite(value)
        client.set_model_version_tag(name, version, f"{EVAL_TAG_PREFIX}{key}",
                                     "nan" if number is None else repr(number))
    _attach_metrics_to_logged_model(client, name, version, metrics)
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    previous = str(champion.version) if champion is not None else None
    champion_metrics = recorded_metrics(champion) if champion is not None else {}
    if blockers:
        promoted, reason = False, blocked_reason(blockers)
    elif champion is None:
        promoted, reason = True, "no champion yet"
    elif previous == version:
        promoted, reason = False, "this version is already the champion"
    else:
        promoted, reason = compare(metrics, champion_metrics, rule)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
        if previous is not None:
            client.set_model_version_tag(name, version, "promoted_over", previous)
    client.set_model_version_tag(name, version, "promotion_decision", "promoted" if promoted else "not promoted")
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    return {
        "model": name,
        "version": version,
        "promoted": promoted,
        "reason": reason,
        "blockers": list(blockers),
        "previous_champion": previous,
        "champion": version if promoted else previous,
        "criteria": [asdict(c) for c in rule],
        "challenger_metrics": {c.metric: _finite(metrics.get(c.metric)) for c in rule},
        "champion_metrics": {c.metric: _finite(champion_metrics.get(c.metric)) for c in rule}
        if champion is not None else {},
    }


# --------------------------------------------------------------------------- loading


def download_registered_model(uri: str, tracking_uri: str | None = None,
                              dst_dir: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Download a registered model's artifacts (``models:/NAME@alias`` or ``models:/NAME/version``).

    Returns the local folder and registry facts (name, version, alias, run_id, source). The alias is
    resolved to a version first, so the facts say exactly which version is being served.
    """
    match = MODELS_URI.match(uri)
    if match is None:
        raise ConfigError(uri, "", "model URI is not of the form models:/NAME@alias or models:/NAME/version")
    from mlflow.tracking import MlflowClient

    import mlflow

    check_sqlite_store(tracking_uri or mlflow.get_registry_uri(), uri)  # never create an empty stray store
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient()
    name, alias, version = match["name"], match["alias"], match["version"]
    try:
        if alias is not None:
            mv = client.get_model_version_by_alias(name, alias)
        elif version is not None and version.isdigit():
            mv = client.get_model_version(name, version)
        else:
            raise ConfigError(uri, "", "give an alias (@champion) or a numeric version")
    except mlflow.exceptions.MlflowException as exc:
        raise CheckpointError(f"{uri}: not found in the MLflow registry at {mlflow.get_registry_uri()}: "
                              f"{exc.message}") from exc
    dst = Path(dst_dir) if dst_dir is not None else Path(tempfile.mkdtemp(prefix="sao-serve-model-"))
    pinned = f"models:/{name}/{mv.version}"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=pinned, dst_path=str(dst)))
    facts = {"name": name, "version": str(mv.version), "alias": alias, "run_id": mv.run_id,
             "source": mv.source, "uri": uri}
    return local, facts


def registered_name(facts: Mapping[str, Any]) -> str:
    """How a registered model is named when loaded: ``NAME@alias``, else ``NAME/version``."""
    return f"{facts['name']}@{facts['alias']}" if facts.get("alias") else f"{facts['name']}/{facts['version']}"


def load_downloaded(uri: str, local: Path, facts: Mapping[str, Any], config: str | Path | Mapping[str, Any] | None = None,
                    device: str | torch.device = "cpu", *, name: str | None = None, **options: Any) -> LoadedModel:
    """Load a downloaded registered version (full model files) like a local model folder; errors name ``uri``."""
    try:
        loaded = load_local_model(local, config, device, name=name or registered_name(facts), registry=facts, **options)
    except CheckpointError as exc:  # say which registered version the downloaded files belong to
        raise CheckpointError(f"{uri} (version {facts['version']}): {exc}") from exc
    loaded.source = uri
    return loaded


def load_registered(uri: str, config: str | Path | Mapping[str, Any] | None = None,
                    device: str | torch.device = "cpu", *, tracking_uri: str | None = None,
                    dst_dir: str | Path | None = None, name: str | None = None, **options: Any) -> LoadedModel:
    """Download a registered version (:func:`download_registered_model`) and load it like a local model folder
    (:func:`load_downloaded`; ``options`` go to :func:`stable_audio_ops.models.loading.load_local_model`); the
    result keeps the registry facts and is named ``NAME@alias`` / ``NAME/version`` unless ``name`` is given.
    Full-model versions only: :func:`stable_audio_ops.tracking.loading.load_model` loads adapter versions too."""
    local, facts = download_registered_model(uri, tracking_uri, dst_dir=dst_dir)
    return load_downloaded(uri, local, facts, config, device, name=name, **options)


def load_registered_model(uri: str, *, device: str = "cpu", tracking_uri: str | None = None,
                          dst_dir: str | Path | None = None) -> RegistryModel:
    """``models:/NAME@alias`` or ``models:/NAME/version`` -> the built model with strictly loaded weights.

    Works for every model type. Kept for existing callers; new code calls
    :func:`stable_audio_ops.tracking.loading.load_model`, which loads these sources the same way.
    """
    loaded = load_registered(uri, device=device, tracking_uri=tracking_uri, dst_dir=dst_dir)
    return RegistryModel(model=loaded.model, config=loaded.config, folder=loaded.checkpoint.parent,
                         facts=loaded.registry)
