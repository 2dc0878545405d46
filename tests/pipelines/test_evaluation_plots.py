"""The evaluation figures read on their own: axes with units, colour bars in dB, titles saying what each panel
is, one panel per loss (log where it spans decades), the discriminator's start marked, the legend off the data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from pipelines.evaluation import nodes, plots
from pipelines.evaluation.pipeline import create_pipeline

REPO = Path(__file__).resolve().parents[2]

SR = 16000


def _examples(n: int = 2) -> list[dict]:
    t = np.arange(int(0.5 * SR)) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return [{"id": str(i), "caption": f"violin A4 take {i}", "sample_rate": SR, "generated": tone, "real": tone,
             "reconstruction": tone} for i in range(n)]


def _image_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.images]


def _colour_bars(fig) -> list:
    return [ax for ax in fig.axes if not ax.images and "dB" in ax.get_ylabel()]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_spectrogram_grid_has_time_and_frequency_axes_captions_and_a_db_colour_bar():
    fig = plots.spectrogram_grid(_examples())
    panels = _image_axes(fig)
    assert len(panels) == 4
    assert [ax.get_title() for ax in panels[:2]] == ["generated: violin A4 take 0", "real: violin A4 take 0"]
    assert panels[0].get_ylabel() == "frequency (Hz)" and panels[-1].get_xlabel() == "time (s)"
    assert panels[0].get_xlim() == pytest.approx((0.0, 0.5))
    labels = [t.get_text() for t in panels[0].get_yticklabels()]
    assert {"100", "1k", "4k"} <= set(labels)  # frequencies, not mel band numbers
    assert len(_colour_bars(fig)) == 1


def test_frequency_ticks_sit_on_the_mel_bands_they_name():
    positions, labels = plots._mel_frequency_ticks(SR)
    assert labels[0] == "100" and labels[-1] == "4k"  # 8 kHz is Nyquist, above the top band centre
    assert positions == sorted(positions) and 0 <= positions[0] and positions[-1] <= plots.MEL_BANDS - 1


def test_comparison_grid_titles_each_column_and_row_and_has_axes():
    examples = _examples(2)
    fig = plots.comparison_grid(examples, examples)
    panels = _image_axes(fig)
    assert [ax.get_title() for ax in panels[:3]] == ["real", "autoencoder reconstruction", "generated"]
    assert all(ax.get_xlabel() == "time (s)" for ax in panels)
    assert panels[0].get_ylabel() == "frequency (Hz)"
    assert [sub._suptitle.get_text() for sub in fig.subfigs[1:]] == ["violin A4 take 0", "violin A4 take 1"]
    assert len(_colour_bars(fig)) == 2  # one per row


def _history() -> dict:
    steps = range(0, 1000, 10)
    return {"autoencoder": {"train/loss": [(s, 10.0 * np.exp(-s / 150) + 0.01) for s in steps],
                            "train/adv_loss": [(s, 0.0 if s < 400 else 0.7) for s in steps]},
            "latent_diffusion": {"train/loss": [(s, 1.0 - s / 2000) for s in steps]}}


def test_loss_curves_one_panel_per_loss_log_scale_where_it_spans_decades_and_the_discriminator_start():
    fig = plots.loss_curves(_history(), {"autoencoder": 400})
    panels = {ax.get_title(): ax for ax in fig.axes if ax.lines}
    assert set(panels) == {"autoencoder: train/adv_loss", "autoencoder: train/loss", "latent_diffusion: train/loss"}
    assert panels["autoencoder: train/loss"].get_yscale() == "log"  # 10 -> 0.01
    assert panels["latent_diffusion: train/loss"].get_yscale() == "linear"  # 1 -> 0.5
    assert panels["autoencoder: train/adv_loss"].get_yscale() == "linear"  # zeros cannot go on a log axis
    assert all(ax.get_xlabel() == "step" for ax in panels.values())
    marks = [line for line in panels["autoencoder: train/loss"].lines if line.get_linestyle() == "--"]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == 400
    assert not any(ln.get_linestyle() == "--" for ln in panels["latent_diffusion: train/loss"].lines)
    # the legend belongs to the figure, outside every panel, and names the mark
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert "discriminator starts (warmup_steps)" in [t.get_text() for t in legend.get_texts()]


def test_loss_curves_without_history_say_so():
    fig = plots.loss_curves({"autoencoder": {}, "latent_diffusion": {}})
    assert "no loss history in MLflow" in [t.get_text() for ax in fig.axes for t in ax.texts]


def _catalog_paths() -> dict[str, Path]:
    catalog = yaml.safe_load((REPO / "conf" / "base" / "catalog_evaluation.yml").read_text())
    return {name: Path((entry.get("dataset") or entry)["filepath"]) for name, entry in catalog.items()
            if "filepath" in (entry.get("dataset") or entry)}


def test_the_report_embeds_every_figure_by_a_link_that_resolves_to_where_the_catalog_writes_it():
    paths = _catalog_paths()
    report_dir = paths["evaluation_report"].parent
    (figure_outputs,) = [n.outputs for n in create_pipeline().nodes if n.name == "make_plots"]
    assert set(plots.REPORT_FIGURES) == set(figure_outputs)
    for dataset, (_, link) in plots.REPORT_FIGURES.items():
        assert not Path(link).is_absolute()
        assert os.path.normpath(report_dir / link) == os.path.normpath(paths[dataset])


def test_the_report_node_writes_those_links():
    decision = {"promoted": False, "reason": "not promoted: x", "model": "m", "version": "1", "champion": None}
    _, _, report = nodes.build_report({"mrstft": 1.0}, {"model": {"n": 2.0, "kid": 1.0}, "noise": {"kid": 0.5}},
                                      {"autoencoder": decision, "latent_diffusion": decision},
                                      {"counts": {"train": 4, "test": 2}, "rule": "r"})
    for caption, link in plots.REPORT_FIGURES.values():
        assert f"![{caption}]({link})" in report
    assert "**the generator (notes for held-out captions) is at noise level**" in report


def test_the_discriminator_start_comes_from_the_embedded_training_config(tmp_path):
    def model_file(name: str, config: dict | None) -> str:
        path = tmp_path / f"{name}.safetensors"
        save_file({"w": torch.zeros(1)}, str(path), metadata={"model_config": json.dumps(config)} if config else None)
        return str(path)

    assert nodes.discriminator_start(model_file("a", {"training": {"warmup_steps": 300}})) == 300
    assert nodes.discriminator_start(model_file("b", {"training": {"warmup_steps": 0}})) is None
    assert nodes.discriminator_start(model_file("c", {"model_type": "autoencoder"})) is None
    assert nodes.discriminator_start(model_file("d", None)) is None
