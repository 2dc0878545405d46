"""What the API answers, as pydantic models, and the error answers each route documents in OpenAPI.

Why declared models rather than ``dict[str, Any]``: ``/docs`` and generated clients show the fields, their
types and meanings only when the responses have a schema. The routes still build plain dicts; FastAPI
checks them against these models, so a renamed field fails the tests instead of silently changing the API.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# Example request bodies shown by /docs (the "Try it out" default is the first one).
GENERATE_EXAMPLES: dict[str, dict[str, Any]] = {
    "short": {"summary": "a short note (server defaults for the rest)",
              "value": {"prompt": "a flute playing C5, soft", "seconds_total": 1.5, "steps": 50, "seed": 1}},
    "variations": {"summary": "three variations as FLAC (a zip)",
                   "value": {"prompt": "a violin playing A4, loud", "negative_prompt": "noise", "seconds_total": 1.5,
                             "steps": 50, "cfg_scale": 5.0, "seed": 7, "batch_size": 3, "format": "flac"}},
}


class ErrorDetail(BaseModel):
    """The body of 401 / 404 / 409 / 500 / 503 answers."""

    detail: str = Field(description="what went wrong, in words")
    status: str | None = Field(None, description="409 only: the job's status (queued, running, failed, ...)")


class Health(BaseModel):
    status: str = Field(description="ok, or failed when the model could not be loaded")
    error: str | None = Field(None, description="why the model failed to load")


class Readiness(BaseModel):
    ready: bool
    status: str = Field(description="loading | warming_up | ready | failed")
    error: str | None = None


class ModelDefaults(BaseModel):
    """What a request (and the web page) gets for the fields it leaves out."""

    seconds_total: float = Field(description="the model's training length (sample_size / sample_rate), capped")
    steps: int
    cfg_scale: float
    sampler: str
    example_prompts: list[str] = Field(description="prompts of the model config's demo conditioning")
    demo_steps: int | None = Field(None, description="sampler steps of the model's training demos "
                                                     "(training.demo.demo_steps); the web page starts from it")


class ModelEntry(BaseModel):
    """The served model; the fields after ``limits`` appear once the model is loaded."""

    id: str
    object: str = "model"
    status: str
    limits: dict[str, float | int] = Field(description="max_seconds, max_steps, max_batch, max_prompt_length, "
                                                       "queue_size")
    source: str | None = None
    device: str | None = None
    registry: dict[str, Any] | None = Field(None, description="name, version, alias, run_id for models:/ sources")
    sample_rate: int | None = None
    sample_size: int | None = Field(None, description="training length in samples")
    audio_channels: int | None = None
    diffusion_objective: str | None = None
    model_type: str | None = None
    conditioning: list[str] | None = None
    text_conditioned: bool | None = None
    extra_conditioning: list[str] | None = None
    samplers: list[str] | None = None
    default_sampler: str | None = None
    min_input_length: int | None = None
    fixed_length: bool | None = None
    precision: str | None = Field(None, description="fp32, or bf16 (the diffusion network under bfloat16 autocast)")
    defaults: ModelDefaults | None = None


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelEntry]


class JobView(BaseModel):
    """A job; ``progress`` counts sampler steps (decoding follows the last one), ``eta_s`` is the time left
    to the last step at the rate so far (null while queued or before the first step)."""

    id: str
    status: str = Field(description="queued | running | succeeded | failed | cancelled")
    created: float = Field(description="unix time")
    params: dict[str, Any] = Field(description="the request as the server resolved it (seed, defaults)")
    status_url: str
    progress: str = Field(description="sampler steps done, as 'i/steps'", examples=["12/50"])
    step: int
    steps: int
    fraction: float = Field(description="step / steps")
    eta_s: float | None = Field(None, description="seconds until the last sampler step (estimate)")
    elapsed_s: float | None = Field(None, description="seconds since the model call began")
    seeds: list[int] | None = None
    outputs: int | None = None
    media_type: str | None = None
    sample_rate: int | None = None
    num_samples: int | None = None
    audio_urls: list[str] | None = None
    spectrogram_urls: list[str] | None = Field(None, description="PNG spectrogram of each output")
    error: str | None = None


class Stats(BaseModel):
    """Counters since start-up (the warm-up call excluded)."""

    status: str = Field(description="the model's status, as /readyz")
    batcher: dict[str, Any] | None = Field(
        None, description="calls (model calls), items, requests, failed_calls, retried_alone (requests re-run "
                          "alone after their shared call failed), abandoned_calls (calls stopped because every "
                          "client left), rejected (503 queue full), batch_sizes (items per call -> calls), "
                          "mean_items_per_call, mean_call_s, last_call_s")
    queued_items: int = Field(description="items waiting for the model")
    running_items: int = Field(description="items in the model call now running")
    jobs: dict[str, int] = Field(description="jobs kept, by status")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error answers a route can give, each with the :class:`ErrorDetail`
    body and a sentence saying when it happens."""
    meaning = {
        401: "missing or wrong bearer token (only when the server runs with SAO_API_TOKEN)",
        404: "no such job (unknown, expired or deleted), or no output with that index",
        409: "the job has no audio yet (queued or running) or never will (failed, cancelled)",
        500: "the generation failed (e.g. the model produced non-finite audio); the reason is in detail",
        503: "the model is not ready (loading, warming up, failed) or the queue is full; see Retry-After",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorDetail, "description": meaning[code]}
        if code == 503:
            entry["headers"] = {"Retry-After": {"description": "seconds to wait before retrying",
                                                "schema": {"type": "integer"}}}
        out[code] = entry
    return out
