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

from stable_audio_ops.evaluation.mel import mel_power_spectrogram, power_to_db  # noqa: E402

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


def _log_mel(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(1, 1, -1)
    n_fft = 1024 if x.shape[-1] >= 1024 else 256
    mel = mel_power_spectrogram(x, sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64)
    return power_to_db(mel, -100.0)[0, 0].numpy()


def spectrogram_grid(examples: Sequence[Mapping[str, Any]], title: str = "generated vs real") -> Figure:
    """One row per caption: the generated note's log-mel spectrogram beside the real note's."""
    rows = max(1, len(examples))
    fig, axes = plt.subplots(rows, 2, figsize=(8, 1.9 * rows + 0.6), squeeze=False)
    for row, example in enumerate(examples):
        for col, key in enumerate(("generated", "real")):
            ax = axes[row][col]
            audio = example.get(key)
            if audio is None:
                ax.axis("off")
                continue
            ax.imshow(_log_mel(audio, int(example["sample_rate"])), origin="lower", aspect="auto",
                      cmap="magma", vmin=-100, vmax=0)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(key)
            if col == 0:
                ax.set_ylabel(str(example.get("caption", ""))[:40], fontsize=7)
    if not examples:
        axes[0][0].text(0.5, 0.5, "no examples", ha="center")
    fig.suptitle(title)
    fig.tight_layout()
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
    fig = plt.figure(figsize=(10, 2.1 * len(rows) + 0.5))
    header, *subfigs = fig.subfigures(len(rows) + 1, 1, height_ratios=[0.25] + [1.0] * len(rows))
    header.suptitle(title)
    for subfig, row in zip(subfigs, rows, strict=True):
        axes = subfig.subplots(1, len(COMPARISON_COLUMNS))
        subfig.suptitle(str(row.get("caption", "no examples")), fontsize=9, fontweight="bold")
        subfig.subplots_adjust(top=0.82, bottom=0.12, left=0.04, right=0.98, wspace=0.08)
        for ax, (key, label) in zip(axes, COMPARISON_COLUMNS, strict=True):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(label, fontsize=7)
            audio = row.get(key)
            if audio is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
                continue
            ax.imshow(_log_mel(audio, int(row["sample_rate"])), origin="lower", aspect="auto", cmap="magma",
                      vmin=-100, vmax=0)
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


def loss_curves(histories: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]]) -> Figure:
    """``{model: {metric: [(step, value), ...]}}`` -> one panel per model, one line per loss."""
    models = [m for m, h in histories.items() if h] or ["(none)"]
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 3.5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        history = histories.get(model) or {}
        for metric, points in sorted(history.items()):
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, label=metric, linewidth=1)
        if history:
            ax.legend(fontsize=7)
            ax.set_xlabel("step")
        else:
            ax.text(0.5, 0.5, "no loss history in MLflow", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{model} training losses")
    fig.tight_layout()
    return fig
