"""A small real labelled set for the evaluation tests: demo notes rendered once per session (FluidR3)."""

from __future__ import annotations

import pytest

from stable_audio_ops.data.preparation.demo_notes import render_demo_notes
from stable_audio_ops.evaluation.judge import load_labelled_clips

# 2 instruments x C4..G4 x 2 velocities = 32 clips of 1.5 s at 16 kHz (rendered in well under a second).
INSTRUMENTS = ("grand_piano", "flute")
MIDI_LOW, MIDI_HIGH = 60, 67
VELOCITIES = (40, 120)


@pytest.fixture(scope="session")
def demo_clips(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_demo_notes") / "notes"
    render_demo_notes(out, instruments=list(INSTRUMENTS), midi_low=MIDI_LOW, midi_high=MIDI_HIGH,
                      velocities=VELOCITIES, progress=False)
    clips = load_labelled_clips(out)
    assert len(clips) == len(INSTRUMENTS) * (MIDI_HIGH - MIDI_LOW + 1) * len(VELOCITIES)
    return clips
