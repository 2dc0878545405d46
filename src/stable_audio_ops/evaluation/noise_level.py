"""Say plainly when a model scores no better than noise.

Why: the evaluation already judges white noise (at each real clip's loudness) beside the model, as the floor
of every judge. A table of numbers makes a reader compare each column against that row; a collapsed or
untrained model then reads as "some numbers". This module turns the comparison into sentences for the
report: on which judges the model is at noise level, or that it is above noise on all of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# judge -> True when higher is better (accuracies), False when lower is better (distribution distances)
JUDGE_DIRECTIONS: dict[str, bool] = {
    "pitch_acc_crepe": True,
    "pitch_acc_acf": True,
    "inst_acc": True,
    "dyn_acc": True,
    "pitch_x_inst": True,
    "kid": False,
    "fd": False,
}


def _number(values: Mapping[str, object], key: str) -> float | None:
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def at_noise_level(model: Mapping[str, object], noise: Mapping[str, object]) -> dict[str, tuple[float, float]]:
    """Judges on which ``model`` is no better than ``noise``: ``{judge: (model value, noise value)}``.

    "No better" includes a tie: an accuracy equal to the noise's is chance, not skill. Judges missing or
    non-finite on either side are left out (they cannot tell).
    """
    found: dict[str, tuple[float, float]] = {}
    for judge, higher_is_better in JUDGE_DIRECTIONS.items():
        ours, floor = _number(model, judge), _number(noise, judge)
        if ours is None or floor is None:
            continue
        if (ours <= floor) if higher_is_better else (ours >= floor):
            found[judge] = (ours, floor)
    return found


def noise_level_line(what: str, model: Mapping[str, object], noise: Mapping[str, object] | None) -> str:
    """One report sentence about ``what`` (e.g. "the generator"): at noise level on which judges, or above
    noise on every judge compared; says so when there is no noise reference to compare with."""
    if not noise:
        return f"- {what}: no noise reference was judged, so its noise level is unknown."
    compared = [j for j in JUDGE_DIRECTIONS if _number(model, j) is not None and _number(noise, j) is not None]
    if not compared:
        return f"- {what}: no judge scored both it and the noise reference."
    found = at_noise_level(model, noise)
    if not found:
        return f"- {what}: better than the noise reference on every judge ({', '.join(compared)})."
    details = ", ".join(f"{j} {ours:.3g} vs noise {floor:.3g}" for j, (ours, floor) in found.items())
    scope = "every judge" if len(found) == len(compared) else f"{len(found)} of {len(compared)} judges"
    return f"- **{what} is at noise level** on {scope}: {details}."


__all__ = ["JUDGE_DIRECTIONS", "at_noise_level", "noise_level_line"]
