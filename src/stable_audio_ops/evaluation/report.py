"""The evaluation's outputs for people and tools: ``metrics.json`` (DVC), the same numbers flattened for
MLflow, and a Markdown report that starts with the test split the numbers come from.

Why one builder: the three views must hold the same numbers; built from one nested dict they cannot drift.
``metrics.json`` keeps only the headline numbers (:func:`headline_metrics`: what `dvc metrics diff` and
`dvc exp show` should compare between runs); timings, medians and the judges' diagnostics go to MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stable_audio_ops.data.preparation.split import format_split
from stable_audio_ops.evaluation.judge import format_report
from stable_audio_ops.evaluation.noise_level import noise_level_line
from stable_audio_ops.utils.jsonable import finite_or_null

MODELS = ("autoencoder", "latent_diffusion")
# Headline numbers per section of the nested metrics, in the judges' own names (the MLflow keys, prefixed
# ``evaluation.``, are the same paths): quality and caption adherence, never wall-clock timings.
JUDGE_HEADLINE = ("pitch_acc_crepe", "pitch_acc_acf", "inst_acc", "dyn_acc", "kid", "pitch_x_inst",
                  "clap_score", "clap_r1")  # the CLAP ones only when evaluation.clap_model is set
AUTOENCODER_HEADLINE = ("n_clips", "mrstft", "mel_distance_db", "si_sdr_db", "match_accuracy", "collapsed",
                        *JUDGE_HEADLINE)
GENERATION_HEADLINE = ("n", *JUDGE_HEADLINE)


def headline_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The DVC view of the nested evaluation metrics: split counts, promotion flags and the headline keys of
    the autoencoder and of every judged generation set (model and its calibration sets); keys a run did not
    compute (e.g. CREPE when only ``acf`` judges) are left out rather than written as null."""
    def pick(values: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
        return {key: values[key] for key in keys if values.get(key) is not None}

    return {
        "split": dict(metrics["split"]),
        "autoencoder": pick(metrics["autoencoder"], AUTOENCODER_HEADLINE),
        "generation": {name: pick(values, GENERATION_HEADLINE) for name, values in metrics["generation"].items()},
        "promoted": dict(metrics["promoted"]),
    }


def flatten_metrics(metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": {"value": 1.0, "step": 0}}``: numbers only (booleans and None left out),
    the shape kedro-mlflow's metrics datasets log."""
    flat: dict[str, dict[str, float]] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        elif isinstance(node, int | float) and not isinstance(node, bool):
            flat[prefix] = {"value": float(node), "step": 0}

    walk("", metrics)
    return flat


def promotion_line(decision: Mapping[str, Any]) -> str:
    """One report line: the outcome, why (a blocked reason already starts with "not promoted:"), the champion."""
    reason = decision["reason"]
    outcome = "promoted to champion — " if decision["promoted"] else \
        ("" if reason.startswith("not promoted") else "not promoted — ")
    champion = f"champion now v{decision['champion']}" if decision.get("champion") else "no champion yet"
    return f"- {decision['model']} v{decision['version']}: {outcome}{reason} ({champion})"


def noise_level_lines(autoencoder_metrics: Mapping[str, Any],
                      generation_results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The report's first section: is either model at noise level? Both are held against the ``noise`` set the
    generation judges scored (white noise at each held-out clip's loudness, on the same captions)."""
    noise = generation_results.get("noise")
    return ["## Noise level", "",
            noise_level_line("the autoencoder (its reconstructions)", autoencoder_metrics, noise),
            noise_level_line("the generator (notes for held-out captions)", generation_results.get("model", {}), noise),
            ""]


def figure_lines(figures: Sequence[tuple[str, str]]) -> list[str]:
    """``(caption, path relative to the report)`` pairs as embedded Markdown images, each under its caption."""
    if not figures:
        return []
    lines = ["## Figures", ""]
    for caption, link in figures:
        lines += [f"### {caption}", "", f"![{caption}]({link})", ""]
    return lines


def build_metrics(autoencoder_metrics: Mapping[str, float], generation_results: Mapping[str, Mapping[str, float]],
                  promotion: Mapping[str, Any], dataset_split: Mapping[str, Any],
                  figures: Sequence[tuple[str, str]] = ()) -> tuple[dict[str, Any], dict[str, dict[str, float]], str]:
    """(metrics.json content: the headline numbers, every number flattened for MLflow, the Markdown report).

    ``promotion`` is the promotion decision (per model: ``promoted``, ``reason``, ``champion``, ...; plus
    ``latent_diffusion_lineage``); ``dataset_split`` is data_preparation's split manifest; ``figures`` are the
    plots to embed, as ``(caption, path relative to the report)``.
    """
    metrics = finite_or_null({
        "split": {name: int(count) for name, count in dataset_split["counts"].items()},
        "autoencoder": dict(autoencoder_metrics),
        "generation": {name: dict(values) for name, values in generation_results.items()},
        "promoted": {kind: int(bool(promotion[kind]["promoted"])) for kind in MODELS},
    })
    lines = ["# Evaluation report", "", *noise_level_lines(autoencoder_metrics, generation_results),
             "## Data: the test split", "", format_split(dataset_split), "",
             "## Autoencoder reconstruction (held-out test clips)", ""]
    lines += [f"- {k}: {v:.4g}" for k, v in autoencoder_metrics.items() if isinstance(v, int | float)]
    lines += ["", "## Generation (held-out test captions)", "", format_report(generation_results), "## Promotion", ""]
    lines += [promotion_line(promotion[kind]) for kind in MODELS]
    lineage = promotion.get("latent_diffusion_lineage", {})
    lines.append(f"- diffusion trained on autoencoder v{lineage.get('autoencoder_version')}: "
                 f"{lineage.get('autoencoder_lineage')}")
    lines += ["", *figure_lines(figures)]
    return headline_metrics(metrics), flatten_metrics(metrics), "\n".join(lines) + "\n"


__all__ = ["build_metrics", "figure_lines", "flatten_metrics", "headline_metrics", "noise_level_lines",
           "promotion_line"]
