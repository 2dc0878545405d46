"""Figures of the evaluation report (matplotlib, Agg backend): spectrograms, real | reconstruction | generated
comparison, metric bars, loss curves.

Each function returns a Figure; the catalog (MatplotlibDataset wrapped in kedro-mlflow's
MlflowArtifactDataset) writes it to data/08_reporting/plots/ and into the MLflow run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from stable_audio_ops.evaluation.mel import hz_to_mel, mel_power_spectrogram, mel_to_hz, power_to_db  # noqa: E402

# What the bars show, and which way is better (the title says so).
BAR_METRICS = (
    ("pitch_acc_crepe", "higher"),
    ("pitch_acc_acf", "higher"),
    ("inst_acc", "higher"),
    ("dyn_acc", "higher"),
    ("pitch_x_inst", "higher"),
    ("kid", "lower"),
)
SET_COLOURS = {"model": "tab:blue", "real": "tab:green", "noise": "tab:red", "sine": "tab:orange",
               "silence": "tab:gray"}


# What the evaluation report embeds: catalog dataset -> (caption, path relative to the report). The report is
# data/08_reporting/evaluation_report.md and the plots data/08_reporting/plots/ (catalog_evaluation.yml); a
# test holds these links to the catalog's paths.
REPORT_FIGURES: dict[str, tuple[str, str]] = {
    "plot_comparison": ("Per held-out caption: real | autoencoder reconstruction | generated", "plots/comparison.png"),
    "plot_spectrograms": ("Generated vs real notes", "plots/spectrograms.png"),
    "plot_metric_bars": ("Generation judges: model vs real (ceiling) vs noise (floor)", "plots/metric_bars.png"),
    "plot_loss_curves": ("Training losses", "plots/loss_curves.png"),
}

MEL_BANDS = 64
DB_RANGE = (-100.0, 0.0)  # mel power in dB: the colour scale shared by every spectrogram panel
FREQUENCY_TICKS_HZ = (100, 250, 500, 1000, 2000, 4000, 8000, 16000)


def _log_mel(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(1, 1, -1)
    n_fft = 1024 if x.shape[-1] >= 1024 else 256
    mel = mel_power_spectrogram(x, sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=MEL_BANDS)
    return power_to_db(mel, DB_RANGE[0])[0, 0].numpy()


def _mel_frequency_ticks(sample_rate: int) -> tuple[list[float], list[str]]:
    """Where round frequencies sit on the mel-band axis (band centres of the HTK filterbank), and their labels:
    the bands are not linear in Hz, so the axis is labelled with frequencies, not band numbers."""
    edges = mel_to_hz(torch.linspace(0.0, float(hz_to_mel(sample_rate / 2)), MEL_BANDS + 2))
    centres = edges[1:-1].numpy()
    ticks = [f for f in FREQUENCY_TICKS_HZ if centres[0] <= f <= centres[-1]]
    positions = [float(np.interp(f, centres, np.arange(MEL_BANDS))) for f in ticks]
    return positions, [f"{f / 1000:g}k" if f >= 1000 else str(f) for f in ticks]


def _mel_panel(ax, audio: np.ndarray, sample_rate: int, *, ylabel: bool, xlabel: bool):
    """One log-mel spectrogram on ``ax`` with time in seconds and frequency in Hz; returns the image (for a
    colour bar)."""
    duration = len(np.asarray(audio).reshape(-1)) / sample_rate
    image = ax.imshow(_log_mel(audio, sample_rate), origin="lower", aspect="auto", cmap="magma",
                      vmin=DB_RANGE[0], vmax=DB_RANGE[1], extent=(0, duration, -0.5, MEL_BANDS - 0.5))
    positions, labels = _mel_frequency_ticks(sample_rate)
    ax.set_yticks(positions, labels if ylabel else [""] * len(labels), fontsize=6)
    ax.tick_params(axis="x", labelsize=6)
    if ylabel:
        ax.set_ylabel("frequency (Hz)", fontsize=7)
    if xlabel:
        ax.set_xlabel("time (s)", fontsize=7)
    return image


def _colour_bar(fig, image, axes) -> None:
    fig.colorbar(image, ax=axes, pad=0.01, fraction=0.03, label="mel power (dB)")


def spectrogram_grid(examples: Sequence[Mapping[str, Any]], title: str = "generated vs real") -> Figure:
    """One row per caption: the generated note's log-mel spectrogram beside the real note's."""
    rows = max(1, len(examples))
    fig, axes = plt.subplots(rows, 2, figsize=(9, 1.9 * rows + 0.9), squeeze=False, layout="constrained")
    image = None
    for row, example in enumerate(examples):
        for col, key in enumerate(("generated", "real")):
            ax = axes[row][col]
            audio = example.get(key)
            if audio is None:
                ax.axis("off")
                continue
            image = _mel_panel(ax, audio, int(example["sample_rate"]), ylabel=col == 0, xlabel=row == rows - 1)
            ax.set_title(f"{key}: {str(example.get('caption', ''))[:70]}", fontsize=7)
    if image is not None:
        _colour_bar(fig, image, axes)
    if not examples:
        axes[0][0].text(0.5, 0.5, "no examples", ha="center")
    fig.suptitle(title)
    return fig


COMPARISON_COLUMNS = (("real", "real"), ("reconstruction", "autoencoder reconstruction"), ("generated", "generated"))


def comparison_rows(reconstructions: Sequence[Mapping[str, Any]],
                    generations: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Join the two nodes' examples by clip id: one row per test caption with real, reconstruction, generated."""
    rows: dict[str, dict[str, Any]] = {}
    for example in [*reconstructions, *generations]:
        key = str(example.get("id") or example.get("caption"))
        rows.setdefault(key, {}).update({k: v for k, v in example.items() if v is not None})
    return list(rows.values())


def comparison_grid(reconstructions: Sequence[Mapping[str, Any]], generations: Sequence[Mapping[str, Any]],
                    title: str = "test captions: real | autoencoder reconstruction | generated") -> Figure:
    """One row per test caption (titled with it), log-mel spectrograms of the real clip, its reconstruction
    and the note generated for its caption: a collapsed autoencoder or generator repeats one picture down its
    column, which a person sees at a glance."""
    rows = comparison_rows(reconstructions, generations) or [{}]
    fig = plt.figure(figsize=(11, 2.3 * len(rows) + 0.5), layout="constrained")
    header, *subfigs = fig.subfigures(len(rows) + 1, 1, height_ratios=[0.25] + [1.0] * len(rows))
    header.suptitle(title)
    for subfig, row in zip(subfigs, rows, strict=True):
        axes = subfig.subplots(1, len(COMPARISON_COLUMNS))
        subfig.suptitle(str(row.get("caption", "no examples")), fontsize=9, fontweight="bold")
        image = None
        for col, (ax, (key, label)) in enumerate(zip(axes, COMPARISON_COLUMNS, strict=True)):
            ax.set_title(label, fontsize=7)
            audio = row.get(key)
            if audio is None:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
                continue
            image = _mel_panel(ax, audio, int(row["sample_rate"]), ylabel=col == 0, xlabel=True)
        if image is not None:
            _colour_bar(subfig, image, axes)
    return fig


def metric_bars(results: Mapping[str, Mapping[str, float]], metrics: Sequence[tuple[str, str]] = BAR_METRICS) -> Figure:
    """One panel per metric, one bar per set (model beside the real ceiling and the noise floor)."""
    present = [(m, d) for m, d in metrics if any(m in r for r in results.values())]
    cols = 3
    panels = max(1, len(present))
    fig, axes = plt.subplots(math.ceil(panels / cols), cols, figsize=(4 * cols, 3 * math.ceil(panels / cols)),
                             squeeze=False)
    names = list(results)
    for index, (metric, direction) in enumerate(present):
        ax = axes[index // cols][index % cols]
        values = [results[n].get(metric, float("nan")) for n in names]
        heights = [0.0 if v is None or not np.isfinite(v) else float(v) for v in values]
        bars = ax.bar(names, heights, color=[SET_COLOURS.get(n, "tab:purple") for n in names])
        for bar, value in zip(bars, values, strict=True):
            label = "n/a" if value is None or not np.isfinite(value) else f"{value:.3g}"
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                        va="bottom", fontsize=8)
        ax.set_title(f"{metric} ({direction} is better)", fontsize=9)
    for index in range(len(present), axes.size):
        axes[index // cols][index % cols].axis("off")
    fig.suptitle("generation judges: model vs real (ceiling) vs noise (floor)")
    fig.tight_layout()
    return fig


def _spans_decades(values: Sequence[float]) -> bool:
    """Whether a curve needs a log axis: all positive and its largest value at least 10x its smallest."""
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) >= 10 * min(finite)


def loss_curves(histories: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]],
                discriminator_starts: Mapping[str, int | None] | None = None) -> Figure:
    """``{model: {metric: [(step, value), ...]}}`` -> one row per model, one panel per loss (steps on x; a log
    y axis where a loss spans decades, so the late, small values stay readable).

    ``discriminator_starts`` (model -> step) draws a dashed vertical line where the adversarial losses switch
    on (the autoencoder's ``training.warmup_steps``): a jump in the curves there is expected, not a bug. The
    legend sits below the panels, off the data.
    """
    starts = {m: s for m, s in (discriminator_starts or {}).items() if s}
    models = [m for m, h in histories.items() if h] or ["(none)"]
    columns = max(1, *(len(histories.get(m) or {}) for m in models))
    fig, axes = plt.subplots(len(models), columns, figsize=(3.2 * columns + 0.6, 2.6 * len(models) + 0.8),
                             squeeze=False, layout="constrained")
    for row, model in enumerate(models):
        history = histories.get(model) or {}
        for col in range(columns):
            ax = axes[row][col]
            if not history and col == 0:
                ax.text(0.5, 0.5, "no loss history in MLflow", ha="center", va="center", transform=ax.transAxes)
                ax.set_title(f"{model} training losses", fontsize=8)
                continue
            if col >= len(history):
                ax.axis("off")
                continue
            metric, points = sorted(history.items())[col]
            steps, values = zip(*points, strict=True) if points else ((), ())
            ax.plot(steps, values, linewidth=1, color="tab:blue", label="training loss")
            if _spans_decades(values):
                ax.set_yscale("log")
            if model in starts:
                ax.axvline(starts[model], color="tab:red", linestyle="--", linewidth=1,
                           label="discriminator starts (warmup_steps)")
            ax.set_title(f"{model}: {metric}", fontsize=8)
            ax.set_xlabel("step", fontsize=7)
            ax.tick_params(which="both", labelsize=6)
    handles = {h.get_label(): h for ax in axes.ravel() for h in ax.get_legend_handles_labels()[0]}
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=len(handles), fontsize=7)
    fig.suptitle("training losses")
    return fig
