"""Nodes of the evaluation pipeline: register -> test clips -> judge the autoencoder and the generator ->
promote -> report.

The clips come from data_preparation's test split (``test_dataset_config``): clips, and for the demo
notes caption combinations, that training never saw. Registration comes first so every evaluated model
is a registry version (``challenger``) before its metrics are known; the promotion node then moves
``champion`` by the rule in ``parameters_evaluation.yml`` — never for a version below its promotion
floors or an autoencoder whose output does not depend on its input — and writes why. Judges and
generation live in the library (``stable_audio_ops.evaluation``, ``stable_audio_ops.inference``); these
nodes only wire them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pipelines.evaluation import plots
from stable_audio_ops.data.split import format_split
from stable_audio_ops.evaluation._audio import resample_mono, to_mono
from stable_audio_ops.evaluation.input_dependence import collapse_reason, reconstruction_input_dependence
from stable_audio_ops.evaluation.judge import (
    JudgeReference,
    LabelledClip,
    calibration_sets,
    format_report,
    judge_sets,
    load_dataset_clips,
    prepare_reference,
    split_reference,
)
from stable_audio_ops.evaluation.reconstruction import reconstruct_clips, score_reconstructions
from stable_audio_ops.inference.entry import CONDITIONED_MODEL_TYPES, GENERATION_DEFAULTS, generate
from stable_audio_ops.tracking.floors import Floor, autoencoder_blocker, parse_floors, promotion_blockers
from stable_audio_ops.tracking.lineage import lineage_tags, state_dict_sha256
from stable_audio_ops.tracking.loading import load_model
from stable_audio_ops.tracking.registry import (
    AUTOENCODER_MODEL_NAME,
    DIFFUSION_MODEL_NAME,
    find_version_by_weights,
    log_model_to_registry,
    promote_if_better,
)

log = logging.getLogger(__name__)


def _active_run_id() -> str | None:
    import mlflow

    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def _clean(value: Any) -> Any:
    """JSON-safe numbers: NaN/inf -> None (DVC and json.dump both choke on NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# --------------------------------------------------------------------------- registration


def register_autoencoder(autoencoder_model: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Register the unwrapped autoencoder (new version -> ``challenger``; identical weights -> reused)."""
    tags = {**lineage_tags(), "training_run_id": autoencoder_model.get("mlflow_run_id") or "unknown",
            "evaluation_run_id": _active_run_id() or "unknown"}
    version = log_model_to_registry(autoencoder_model["path"], params.get("autoencoder_name", AUTOENCODER_MODEL_NAME),
                                    tags=tags, artifact_name="autoencoder")
    log.info("registry: %s version %s (%s)", version.name, version.version, "new" if version.new else "existing")
    return version.to_dict()


def _autoencoder_lineage(diffusion_path: str, autoencoder_registration: Mapping[str, Any],
                         autoencoder_name: str) -> dict[str, str]:
    """Which registered autoencoder the diffusion model was trained on, checked against its weights.

    The diffusion checkpoint carries the autoencoder as ``pretransform.model.*``; hashing those tensors
    and comparing them with registered autoencoder versions tells the version for certain ("verified").
    When nothing matches (e.g. a pretransform fine-tuned with the DiT) the autoencoder registered in this
    run is recorded as "declared".
    """
    from stable_audio_ops.models.checkpoints import load_ckpt_state_dict

    state = load_ckpt_state_dict(diffusion_path)
    prefix = "pretransform.model."
    if not any(k.startswith(prefix) for k in state):
        return {"autoencoder_lineage": "none (no autoencoder pretransform in the checkpoint)"}
    sha = state_dict_sha256(state, prefix=prefix)
    match = find_version_by_weights(autoencoder_name, sha)
    if match is not None:
        return {"autoencoder_version": str(match.version), "autoencoder_weights_sha256": sha,
                "autoencoder_lineage": "verified (pretransform weights equal the registered version)"}
    return {"autoencoder_version": str(autoencoder_registration.get("version")), "autoencoder_weights_sha256": sha,
            "autoencoder_lineage": "declared (pretransform weights match no registered autoencoder version)"}


def register_latent_diffusion(latent_diffusion_model: Mapping[str, Any], autoencoder_registration: Mapping[str, Any],
                              params: Mapping[str, Any]) -> dict[str, Any]:
    """Register the unwrapped latent diffusion model with the autoencoder version it was trained on."""
    ae_name = params.get("autoencoder_name", AUTOENCODER_MODEL_NAME)
    lineage = _autoencoder_lineage(latent_diffusion_model["path"], autoencoder_registration, ae_name)
    tags = {**lineage_tags(), **lineage, "autoencoder_model": ae_name,
            "training_run_id": latent_diffusion_model.get("mlflow_run_id") or "unknown",
            "evaluation_run_id": _active_run_id() or "unknown"}
    version = log_model_to_registry(latent_diffusion_model["path"],
                                    params.get("latent_diffusion_name", DIFFUSION_MODEL_NAME), tags=tags,
                                    artifact_name="latent_diffusion")
    log.info("registry: %s version %s (%s), autoencoder lineage: %s", version.name, version.version,
             "new" if version.new else "existing", lineage.get("autoencoder_lineage"))
    return {**version.to_dict(), **lineage}


# --------------------------------------------------------------------------- data


def _round_robin(clips: Sequence[LabelledClip], key: str = "instrument") -> list[LabelledClip]:
    """Clips reordered round-robin over ``key`` (groups sorted), so any prefix covers every instrument."""
    groups: dict[str, list[LabelledClip]] = {}
    for clip in clips:
        groups.setdefault(str(clip[2].get(key)), []).append(clip)
    queues = [list(g) for _, g in sorted(groups.items())]
    ordered: list[LabelledClip] = []
    while any(queues):
        ordered.extend(queue.pop(0) for queue in queues if queue)
    return ordered


def _subsample(clips: Sequence[LabelledClip], limit: int | None, key: str = "instrument") -> list[LabelledClip]:
    """The first ``limit`` clips of the round-robin order: every instrument stays represented, and a smaller
    limit picks a prefix of a larger one, so the autoencoder and the generator share their first captions."""
    ordered = _round_robin(clips, key)
    return ordered if limit is None else ordered[: int(limit)]


def load_evaluation_clips(test_dataset_config: Mapping[str, Any],
                          params: Mapping[str, Any]) -> dict[str, list[LabelledClip]]:
    """The test split (never trained on) divided into a judge reference (probe + KID) and held-out clips
    (the captions judged)."""
    clips = load_dataset_clips(test_dataset_config)
    split = params.get("split", {})
    reference, heldout = split_reference(clips, holdout_fraction=float(split.get("holdout_fraction", 0.3)),
                                         seed=int(split.get("seed", 0)))
    reference = _subsample(reference, split.get("max_reference_clips"))
    log.info("evaluation clips (test split): %d reference, %d held out (of %d)", len(reference), len(heldout),
             len(clips))
    return {"reference": reference, "heldout": heldout}


# --------------------------------------------------------------------------- judges shared by both models


def _judge_reference(clips: Mapping[str, list[LabelledClip]], params: Mapping[str, Any]) -> JudgeReference:
    return prepare_reference(clips["reference"], params.get("judges", {}).get("embedder", "aisfx"))


def _judge_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``judge_sets``: the same judges for reconstructions and generations."""
    judges = params.get("judges", {})
    return {"pitch_judges": tuple(judges.get("pitch_judges", ("crepe", "acf"))),
            "crepe_model": str(judges.get("crepe_model", "tiny")),
            "kid_subsets": int(judges.get("kid_subsets", 100)),
            "kid_subset_size": int(judges.get("kid_subset_size", 1000))}


def _example_count(params: Mapping[str, Any]) -> int:
    return int(params.get("plots", {}).get("spectrogram_examples", 6))


def _examples(clips: Sequence[LabelledClip], made: Sequence[np.ndarray], made_sr: int, key: str,
              count: int) -> list[dict[str, Any]]:
    """The first ``count`` (real, made) pairs for the figures, both at the real clip's rate, keyed by clip id."""
    out = []
    for (real, real_sr, meta), audio in zip(clips[:count], made[:count], strict=True):
        out.append({"id": str(meta.get("id") or meta.get("caption")), "caption": meta.get("caption") or
                    meta.get("prompt", ""), "real": to_mono(real), key: resample_mono(audio, made_sr, int(real_sr)),
                    "sample_rate": int(real_sr)})
    return out


# --------------------------------------------------------------------------- autoencoder


def _load_autoencoder(path: str) -> torch.nn.Module:
    return load_model(path, model_types=("autoencoder",), purpose="evaluated as the autoencoder").model


def _input_dependence(outputs: Sequence[np.ndarray], inputs: Sequence[np.ndarray], sample_rate: int,
                      metas: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """match_accuracy (own note: same instrument and pitch), the strict own-clip rate, pair correlations and
    collapsed (0/1) as metrics. Fewer than 2 clips cannot tell: match_accuracy is NaN (it fails its floor)."""
    if len(outputs) < 2:
        return {"match_accuracy": float("nan")}
    notes = [f"{m.get('instrument')}|{m.get('midi')}" for m in metas]
    found = reconstruction_input_dependence(outputs, inputs, sample_rate, groups=notes)
    keys = ("match_accuracy", "clip_match_accuracy", "mean_pair_correlation", "reference_pair_correlation",
            "collapsed")
    return {**{k: float(found[k]) for k in keys}, "match_groups": float(found["groups"])}


def evaluate_autoencoder(autoencoder_model: Mapping[str, Any], clips: Mapping[str, list[LabelledClip]],
                         params: Mapping[str, Any]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Reconstructions of held-out test clips, judged three ways, plus a few of them for the comparison figure.

    Distances to the input (multi-resolution STFT, log-mel, SI-SDR); whether the output depends on the
    input at all (``match_accuracy``, ``collapsed``); and the generation judges applied to the
    reconstructions as if they were generated for the clip's caption (``pitch_acc_crepe``,
    ``pitch_acc_acf``, ``inst_acc``, ``kid``, ...), so the promotion floors read one scale for both models.
    """
    model = _load_autoencoder(autoencoder_model["path"])
    settings = params.get("autoencoder", {})
    chosen = _subsample(clips["heldout"], settings.get("max_clips"))
    rates = {sr for _, sr, _ in chosen}
    if len(rates) != 1:
        raise ValueError(f"evaluate_autoencoder: held-out clips have mixed sample rates {sorted(rates)}")
    clip_sr = rates.pop()
    model_sr = int(getattr(model, "sample_rate", clip_sr))
    started = time.perf_counter()
    pairs = reconstruct_clips(model, [audio for audio, _, _ in chosen], clip_sr,
                              batch_size=int(settings.get("batch_size", 8)))
    metrics = score_reconstructions(pairs, model_sr)
    inputs, outputs = [to_mono(ref) for ref, _ in pairs], [to_mono(est) for _, est in pairs]
    metrics.update(_input_dependence(outputs, inputs, model_sr, [meta for _, _, meta in chosen]))
    judged = judge_sets({"reconstruction": [(out, model_sr, meta) for out, (_, _, meta) in
                                            zip(outputs, chosen, strict=True)]},
                        _judge_reference(clips, params), **_judge_options(params))["reconstruction"]
    metrics.update({k: v for k, v in judged.items() if k != "n"})
    metrics["seconds"] = time.perf_counter() - started
    log.info("autoencoder reconstruction: %s", {k: round(float(v), 4) for k, v in metrics.items()})
    return metrics, _examples(chosen, outputs, model_sr, "reconstruction", _example_count(params))


# --------------------------------------------------------------------------- generation


def _conditioning(meta: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """Metadata for the conditioners: every caption field, plus the prompt and the timing ids."""
    prompt = meta.get("prompt") or meta.get("caption") or ""
    return {**dict(meta), "prompt": prompt, "seconds_start": 0.0, "seconds_total": float(seconds)}


def generate_for_captions(model: torch.nn.Module, targets: Sequence[Mapping[str, Any]], *, clip_samples: int,
                          steps: int, cfg_scale: float, batch_size: int, seed: int, sampler: str | None = None,
                          device: str | torch.device = "cpu", model_type: str = "diffusion_cond") -> list[np.ndarray]:
    """One mono clip per target caption, ``clip_samples`` long at the model's rate (deterministic seeds)."""
    min_length = int(getattr(model, "min_input_length", 1) or 1)
    sample_size = math.ceil(clip_samples / min_length) * min_length
    seconds = clip_samples / float(model.sample_rate)
    extra = {"sampler_type": sampler} if sampler else {}
    out: list[np.ndarray] = []
    for start in range(0, len(targets), batch_size):
        chunk = targets[start : start + batch_size]
        with torch.inference_mode():
            audio = generate(model, model_type, steps=steps, cfg_scale=cfg_scale,
                             conditioning=[_conditioning(t, seconds) for t in chunk], batch_size=len(chunk),
                             sample_size=sample_size, seed=seed + start, device=device, progress=False, **extra)
        audio = audio.float().cpu().numpy()[:, :, :clip_samples]
        out.extend(item.mean(axis=0).astype(np.float32) for item in audio)
    return out


def evaluate_generation(latent_diffusion_model: Mapping[str, Any], clips: Mapping[str, list[LabelledClip]],
                        params: Mapping[str, Any]) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    """Generate notes for held-out test captions and judge them beside real clips (ceiling) and noise (floor).

    Returns the per-set judge results and a few (generated, real) examples for the figures (the same
    first captions as the autoencoder's examples).
    """
    gen = params.get("generation", {})
    loaded = load_model(latent_diffusion_model["path"], device=str(gen.get("device", "cpu")),
                        model_types=CONDITIONED_MODEL_TYPES, purpose="evaluated on captions")
    model = loaded.model
    heldout = _subsample(clips["heldout"], gen.get("num_captions"))
    targets = [{"midi": m["midi"], "instrument": m["instrument"], "dynamic": m["dynamic"],
                **{k: m[k] for k in ("prompt", "caption", "velocity", "family", "note_name") if k in m}}
               for _, _, m in heldout]
    model_sr = int(model.sample_rate)
    real_sr = int(heldout[0][1])
    clip_samples = round(len(heldout[0][0]) * model_sr / real_sr)
    started = time.perf_counter()
    generated = generate_for_captions(model, targets, clip_samples=clip_samples, steps=int(gen.get("steps", 50)),
                                      cfg_scale=float(gen.get("cfg_scale", GENERATION_DEFAULTS.cfg_scale)),
                                      batch_size=int(gen.get("batch_size", 16)), seed=int(gen.get("seed", 0)),
                                      sampler=gen.get("sampler"), device=loaded.device,
                                      model_type=loaded.model_type)
    gen_seconds = time.perf_counter() - started
    sets = {"model": [(audio, model_sr, t) for audio, t in zip(generated, targets, strict=True)]}
    calibration = tuple(params.get("judges", {}).get("calibration", ("real", "noise")))
    sets.update(calibration_sets(heldout, kinds=calibration, seed=int(gen.get("seed", 0))))
    results = judge_sets(sets, _judge_reference(clips, params), **_judge_options(params))
    results["model"]["generation_seconds"] = gen_seconds
    log.info("generation judges:\n%s", format_report(results))
    return results, _examples(heldout, generated, model_sr, "generated", _example_count(params))


# --------------------------------------------------------------------------- promotion + report


def _metric_view(set_results: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in set_results.items() if isinstance(v, int | float)}


def _floors(params: Mapping[str, Any], kind: str) -> list[Floor]:
    return parse_floors((params["promotion"].get("floors") or {}).get(kind), f"evaluation.promotion.floors.{kind}")


def decide_promotions(autoencoder_registration: Mapping[str, Any], latent_diffusion_registration: Mapping[str, Any],
                      autoencoder_metrics: Mapping[str, float], generation_results: Mapping[str, Mapping[str, float]],
                      params: Mapping[str, Any]) -> dict[str, Any]:
    """Move ``champion`` for each model whose challenger passes its floors and wins under the configured rule;
    say why. A collapsed autoencoder, and a diffusion model trained on an autoencoder that is not
    promotable, are never promoted."""
    rules = params["promotion"]
    ae_metrics, ld_metrics = _metric_view(autoencoder_metrics), _metric_view(generation_results["model"])
    ae_floors, ld_floors = _floors(params, "autoencoder"), _floors(params, "latent_diffusion")
    ae_blockers = promotion_blockers(ae_metrics, ae_floors, collapse=collapse_reason(autoencoder_metrics))
    upstream = autoencoder_blocker(autoencoder_registration["version"], ae_blockers,
                                   latent_diffusion_registration.get("autoencoder_version"))
    ld_blockers = promotion_blockers(ld_metrics, ld_floors, upstream=upstream)
    decisions = {
        "autoencoder": promote_if_better(autoencoder_registration["name"], autoencoder_registration["version"],
                                         ae_metrics, rules["autoencoder"], blockers=ae_blockers),
        "latent_diffusion": promote_if_better(latent_diffusion_registration["name"],
                                              latent_diffusion_registration["version"], ld_metrics,
                                              rules["latent_diffusion"], blockers=ld_blockers),
    }
    for (kind, decision), floors in zip(decisions.items(), (ae_floors, ld_floors), strict=True):
        decision["floors"] = {f.metric: {"min": f.minimum, "max": f.maximum} for f in floors}
        log.info("promotion %s v%s: %s (%s)", kind, decision["version"],
                 "PROMOTED to champion" if decision["promoted"] else "not promoted", decision["reason"])
    lineage = {k: latent_diffusion_registration.get(k) for k in
               ("autoencoder_version", "autoencoder_lineage", "autoencoder_weights_sha256")}
    return _clean({**decisions, "latent_diffusion_lineage": lineage,
                   "registrations": {"autoencoder": dict(autoencoder_registration),
                                     "latent_diffusion": dict(latent_diffusion_registration)}})


def _promotion_line(decision: Mapping[str, Any]) -> str:
    """One report line: the outcome, why (a blocked reason already starts with "not promoted:"), the champion."""
    reason = decision["reason"]
    outcome = "promoted to champion — " if decision["promoted"] else \
        ("" if reason.startswith("not promoted") else "not promoted — ")
    champion = f"champion now v{decision['champion']}" if decision.get("champion") else "no champion yet"
    return f"- {decision['model']} v{decision['version']}: {outcome}{reason} ({champion})"


def build_metrics(autoencoder_metrics: Mapping[str, float], generation_results: Mapping[str, Mapping[str, float]],
                  promotion: Mapping[str, Any],
                  dataset_split: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, float]], str]:
    """metrics.json (DVC metrics), the same numbers flattened for MLflow (logged as ``evaluation.<path>``), and a
    Markdown report that starts with the test split the numbers come from."""
    metrics = _clean({
        "split": {name: int(count) for name, count in dataset_split["counts"].items()},
        "autoencoder": dict(autoencoder_metrics),
        "generation": {name: dict(values) for name, values in generation_results.items()},
        "promoted": {kind: int(bool(promotion[kind]["promoted"])) for kind in ("autoencoder", "latent_diffusion")},
    })
    flat: dict[str, dict[str, float]] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        elif isinstance(node, int | float) and not isinstance(node, bool):
            flat[prefix] = {"value": float(node), "step": 0}

    walk("", metrics)
    lines = ["# Evaluation report", "", "## Data: the test split", "", format_split(dataset_split), "",
             "## Autoencoder reconstruction (held-out test clips)", ""]
    lines += [f"- {k}: {v:.4g}" for k, v in autoencoder_metrics.items() if isinstance(v, int | float)]
    lines += ["", "## Generation (held-out test captions)", "", format_report(generation_results), "## Promotion", ""]
    lines += [_promotion_line(promotion[kind]) for kind in ("autoencoder", "latent_diffusion")]
    lineage = promotion.get("latent_diffusion_lineage", {})
    lines.append(f"- diffusion trained on autoencoder v{lineage.get('autoencoder_version')}: "
                 f"{lineage.get('autoencoder_lineage')}")
    return metrics, flat, "\n".join(lines) + "\n"


def _loss_history(run_id: str | None) -> dict[str, list[tuple[int, float]]]:
    if not run_id:
        return {}
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        keys = [k for k in client.get_run(run_id).data.metrics if "loss" in k and k.startswith("train")]
        return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}
    except MlflowException as exc:
        log.warning("no loss history for run %s: %s", run_id, exc)
        return {}


def make_plots(generation_examples: Sequence[Mapping[str, Any]], reconstruction_examples: Sequence[Mapping[str, Any]],
               generation_results: Mapping[str, Mapping[str, float]], autoencoder_model: Mapping[str, Any],
               latent_diffusion_model: Mapping[str, Any]):
    """The report figures: spectrogram grid, metric bars, training loss curves, and real | reconstruction |
    generated per test caption (a collapsed autoencoder shows as one repeated picture in the middle column)."""
    histories = {"autoencoder": _loss_history(autoencoder_model.get("mlflow_run_id")),
                 "latent_diffusion": _loss_history(latent_diffusion_model.get("mlflow_run_id"))}
    return (plots.spectrogram_grid(generation_examples), plots.metric_bars(generation_results),
            plots.loss_curves(histories), plots.comparison_grid(reconstruction_examples, generation_examples))

