"""The data report's picture: how long the readable files are, at which sample rates, and how loud.

Why: a table of totals hides a folder of 0.2 s clicks or a few clips 30 dB quieter than the rest; three
histograms show them at a glance, next to data_report.md (catalog entry ``data_histograms``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

# (caption, path relative to data_report.md): data/08_reporting/data_report.md and the PNG beside it; a test
# holds this link to the catalog's paths.
REPORT_FIGURE = ("Durations, sample rates and loudness of the readable files", "data_histograms.png")


def _values(rows: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    return [float(row[key]) for row in rows if row.get(key) is not None]


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8)


def data_histograms(manifest: Sequence[Mapping[str, Any]]) -> Figure:
    """Three panels over the readable files of a probe manifest: duration (s), sample rate (Hz), loudness
    (LUFS, of each file's start; silent or sub-400 ms files have none and are counted in the title)."""
    readable = [row for row in manifest if row.get("readable")]
    fig, (duration_ax, rate_ax, loudness_ax) = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")

    durations = _values(readable, "duration_s")
    if durations:
        duration_ax.hist(durations, bins=min(40, max(5, len(set(durations)))), color="tab:blue")
    else:
        _empty(duration_ax, "no readable files")
    duration_ax.set(title="duration", xlabel="duration (s)", ylabel="files")

    rates = sorted({int(r) for r in _values(readable, "sample_rate")})
    counts = [sum(1 for row in readable if row.get("sample_rate") == rate) for rate in rates]
    if rates:
        rate_ax.bar([str(rate) for rate in rates], counts, color="tab:green", width=0.5)
    else:
        _empty(rate_ax, "no readable files")
    rate_ax.set(title="sample rate", xlabel="sample rate (Hz)", ylabel="files")

    loudness = _values(readable, "loudness_lufs")
    if loudness:
        loudness_ax.hist(loudness, bins=min(40, max(5, len(set(loudness)))), color="tab:purple")
    else:
        _empty(loudness_ax, "no loudness measured")
    unmeasured = len(readable) - len(loudness)
    loudness_ax.set(title="loudness" + (f" ({unmeasured} silent or < 0.4 s, not shown)" if unmeasured else ""),
                    xlabel="integrated loudness (LUFS, BS.1770)", ylabel="files")
    fig.suptitle(f"{len(readable)} readable files")
    return fig


__all__ = ["REPORT_FIGURE", "data_histograms"]
