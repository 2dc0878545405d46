"""Offline data preparation: what ``data_preparation`` does once, before any training run.

Kept apart from the datasets in :mod:`stable_audio_ops.data` because it runs at a different time and for a
different reader: it probes raw folders and reports what training will get (:mod:`.probe`), renders the
captioned demo notes (:mod:`.demo_notes`), splits clips into train/test (:mod:`.split`) and writes or
uploads WebDataset shards (:mod:`.shards`). It may import the datasets' building blocks (the folder
scanner, audio I/O, S3 access); nothing under :mod:`stable_audio_ops.data` imports it back (an
import-linter contract in pyproject.toml says so), so training never pulls in FluidSynth or the
report writers.
"""
