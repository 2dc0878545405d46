"""fine_tune: a pretrained conditioned diffusion model -> its own pre-encoding -> LoRA or full fine-tuning ->
adapter + merged model -> evaluation beside the base -> registry with lineage."""

from pipelines.fine_tune.pipeline import create_pipeline

__all__ = ["create_pipeline"]
