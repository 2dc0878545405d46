"""What the autoencoder demo strip writes above each clip: which is real, which the reconstruction, which note."""

from __future__ import annotations

import torch

from stable_audio_ops.training.demos import AutoencoderDemoCallback, clip_label


def test_labels_pair_real_and_reconstruction_with_the_clip_prompt_in_interleaved_order():
    metadata = [{"prompt": "grand piano C4 soft", "relpath": "a.wav"}, {"relpath": "b.wav"}]
    callback = AutoencoderDemoCallback(torch.zeros(2, 1, 64), demo_every=1, demo_metadata=metadata)
    assert callback.item_labels(2) == ["real: grand piano C4 soft", "reconstruction: grand piano C4 soft",
                                       "real: b.wav", "reconstruction: b.wav"]


def test_without_metadata_the_strip_still_says_real_and_reconstruction():
    callback = AutoencoderDemoCallback(torch.zeros(2, 1, 64), demo_every=1)
    assert callback.item_labels(2) == ["real", "reconstruction"] * 2


def test_clip_label_prefers_the_prompt_then_the_caption_then_the_file():
    assert clip_label({"caption": "violin A4", "path": "/x/v.wav"}) == "violin A4"
    assert clip_label({"path": "/x/v.wav"}) == "/x/v.wav"
    assert clip_label({}) == ""
