"""data_report.md shows duration / sample-rate / loudness histograms, in a PNG beside it that its link finds."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import yaml

from pipelines.data_preparation import nodes, plots
from pipelines.data_preparation.pipeline import create_pipeline

REPO = Path(__file__).resolve().parents[2]

MANIFEST = [
    {"readable": True, "duration_s": 1.5, "sample_rate": 16000, "loudness_lufs": -20.0},
    {"readable": True, "duration_s": 1.5, "sample_rate": 16000, "loudness_lufs": -24.5},
    {"readable": True, "duration_s": 4.0, "sample_rate": 44100, "loudness_lufs": None},  # silent
    {"readable": False, "duration_s": None, "sample_rate": None, "loudness_lufs": None, "reason": "empty"},
]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_three_histograms_with_units_over_the_readable_files():
    fig = plots.data_histograms(MANIFEST)
    duration, rate, loudness = fig.axes
    assert (duration.get_xlabel(), rate.get_xlabel()) == ("duration (s)", "sample rate (Hz)")
    assert "LUFS" in loudness.get_xlabel()
    assert all(ax.get_ylabel() == "files" for ax in fig.axes)
    assert sum(p.get_height() for p in duration.patches) == 3
    assert [t.get_text() for t in rate.get_xticklabels()] == ["16000", "44100"]
    assert [p.get_height() for p in rate.patches] == [2, 1]
    assert sum(p.get_height() for p in loudness.patches) == 2
    assert "1 silent or < 0.4 s" in loudness.get_title()
    assert fig._suptitle.get_text() == "3 readable files"


def test_an_empty_manifest_still_draws_and_says_why():
    fig = plots.data_histograms([])
    assert "no readable files" in [t.get_text() for ax in fig.axes for t in ax.texts]


def test_the_report_link_resolves_to_the_png_the_pipeline_writes():
    catalog = yaml.safe_load((REPO / "conf" / "base" / "catalog.yml").read_text())
    report = Path(catalog["data_report"]["filepath"])
    _, link = plots.REPORT_FIGURE
    assert os.path.normpath(report.parent / link) == os.path.normpath(catalog["data_histograms"]["filepath"])
    (node,) = [n for n in create_pipeline().nodes if n.name == "plot_data_histograms"]
    assert node.inputs == ["audio_manifest"] and node.outputs == ["data_histograms"]
    assert nodes.plot_data_histograms(MANIFEST).axes  # the node draws the same figure


def test_dvc_tracks_the_png_as_an_output_of_data_preparation():
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["data_preparation"]
    assert "data/08_reporting/data_histograms.png" in stage["outs"]
