"""The promotion decision for one evaluation: both models, floors first, then the comparison rule.

Why both at once: the diffusion model's latents come from the autoencoder it was trained on, so a
diffusion model is never promoted when that autoencoder is not promotable (failed floors, or an output
that does not depend on its input). The decision is a JSON-clean record of what happened and why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from stable_audio_ops.tracking.floors import autoencoder_blocker, parse_floors, promotion_blockers
from stable_audio_ops.tracking.registry import promote_if_better
from stable_audio_ops.utils.jsonable import finite_or_null

log = logging.getLogger(__name__)

LINEAGE_KEYS = ("autoencoder_version", "autoencoder_lineage", "autoencoder_weights_sha256")


def metric_view(results: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of a metrics mapping (what floors and criteria compare)."""
    return {k: float(v) for k, v in results.items() if isinstance(v, int | float)}


def decide_promotions(autoencoder_registration: Mapping[str, Any],
                      latent_diffusion_registration: Mapping[str, Any],
                      autoencoder_metrics: Mapping[str, Any], latent_diffusion_metrics: Mapping[str, Any], *,
                      rules: Mapping[str, Sequence[Mapping[str, Any]]], floors: Mapping[str, Any],
                      collapse: str | None = None,
                      floors_source: str = "evaluation.promotion.floors") -> dict[str, Any]:
    """Move ``champion`` for each model whose challenger passes its floors and wins under ``rules[kind]``.

    ``floors[kind]`` are the promotion floors (``{metric: minimum}`` or ``{metric: {max: x}}``; a kind absent
    or empty has none); ``collapse`` is the reason the autoencoder's output does not depend on its input,
    if it does not. Returns per model the registry's decision plus its floors, the diffusion model's
    autoencoder lineage and both registrations, with NaN written as null.
    """
    ae_metrics, ld_metrics = metric_view(autoencoder_metrics), metric_view(latent_diffusion_metrics)
    ae_floors = parse_floors(floors.get("autoencoder"), f"{floors_source}.autoencoder")
    ld_floors = parse_floors(floors.get("latent_diffusion"), f"{floors_source}.latent_diffusion")
    ae_blockers = promotion_blockers(ae_metrics, ae_floors, collapse=collapse)
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
    for (kind, decision), kind_floors in zip(decisions.items(), (ae_floors, ld_floors), strict=True):
        decision["floors"] = {f.metric: {"min": f.minimum, "max": f.maximum} for f in kind_floors}
        log.info("promotion %s v%s: %s (%s)", kind, decision["version"],
                 "PROMOTED to champion" if decision["promoted"] else "not promoted", decision["reason"])
    lineage = {k: latent_diffusion_registration.get(k) for k in LINEAGE_KEYS}
    return finite_or_null({**decisions, "latent_diffusion_lineage": lineage,
                           "registrations": {"autoencoder": dict(autoencoder_registration),
                                             "latent_diffusion": dict(latent_diffusion_registration)}})


__all__ = ["decide_promotions", "metric_view"]
