"""FastAPI app: text/duration-conditioned audio generation over HTTP, with batching, jobs and a web page.

``create_app(settings)`` builds the app; the model is loaded by the lifespan in a background task,
so ``/healthz`` answers at once and ``/readyz`` turns 200 only when the weights are loaded and a
warm-up generation has run. All model work goes through one :class:`DynamicBatcher` (one worker
thread), never the event loop.

Endpoints: ``/`` (web page), ``/healthz``, ``/readyz``, ``/v1/models``, ``POST /v1/generate`` (audio
bytes), ``POST /v1/jobs`` -> ``GET /v1/jobs/{id}`` -> ``GET /v1/jobs/{id}/audio``, ``DELETE
/v1/jobs/{id}``, ``GET /v1/jobs/{id}/spectrogram.png``, ``GET /v1/stats``. OpenAPI at ``/openapi.json``,
browsable at ``/docs`` (Swagger UI) and ``/redoc``, both served from assets bundled with the package
(fastapi-offline), so they work without internet. With ``SAO_API_TOKEN`` set, ``/v1/*`` needs
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, field_validator

from stable_audio_ops.errors import NonFiniteOutputError
from stable_audio_ops.inference.entry import GENERATION_DEFAULTS as DEFAULTS
from stable_audio_ops.serving.batcher import BatcherStats, DynamicBatcher, QueueFullError
from stable_audio_ops.serving.disconnect import (
    CLIENT_CLOSED_REQUEST,
    ClientDisconnected,
    result_unless_disconnected,
)
from stable_audio_ops.serving.engine import SEED_LIMIT, Engine, GenerationResult, GenerationSpec
from stable_audio_ops.serving.jobs import Job, JobStore
from stable_audio_ops.serving.model_loader import LoadedModel, load_model
from stable_audio_ops.serving.schemas import (
    GENERATE_EXAMPLES,
    Health,
    JobView,
    ModelList,
    Readiness,
    Stats,
    error_responses,
)
from stable_audio_ops.serving.settings import ServeSettings
from stable_audio_ops.serving.spectrogram import spectrogram_png

log = logging.getLogger("stable_audio_ops.serving")
STATIC_DIR = Path(__file__).parent / "static"
NOT_READY_RETRY_S = 5
API_DESCRIPTION = """Generate audio with a stable-audio-tools style latent diffusion model.

- `POST /v1/generate` answers with the audio itself; `POST /v1/jobs` queues a generation whose status
  (`GET /v1/jobs/{id}`: sampler progress `i/steps` and an ETA) is polled until it succeeds.
- Concurrent requests of the same shape share one model call; `GET /v1/stats` counts how well.
- With `SAO_API_TOKEN` set on the server, every `/v1` route needs `Authorization: Bearer <token>` (401 otherwise).
- 503 (with `Retry-After`) while the model loads or when the queue is full; 422 names the field that breaks a limit.
"""


class GenerateRequest(BaseModel):
    """Body of ``POST /v1/generate`` and ``POST /v1/jobs``. Server limits are listed by ``GET /v1/models``."""

    # allow_inf_nan=False: NaN / Infinity / "inf" are valid JSON for Python's parser, and a NaN passes
    # ``gt=0`` checks silently (every comparison is False) and an Infinity reaches the sampler; refuse them here.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: str = Field("", description="text prompt (ignored by models without a text conditioner)")
    negative_prompt: str = Field("", description="text to steer away from (text-conditioned models, cfg_scale > 1)")
    seconds_total: float | None = Field(None, gt=0, description="duration in seconds (default: the model's "
                                        "training length, see /v1/models defaults)")
    steps: int | None = Field(None, ge=1, description=f"sampler steps (default: min({DEFAULTS.steps}, limit))")
    cfg_scale: float = Field(DEFAULTS.cfg_scale, ge=0, le=100, description="classifier-free guidance scale")
    seed: int = Field(-1, ge=-1, lt=SEED_LIMIT, description="-1 = random; variation i uses seed + i")
    sampler: str | None = Field(None, description="sampler name (default: the model's default)")
    batch_size: int = Field(1, ge=1, description="variations in this request (> 1 returns a zip)")
    format: Literal["wav", "flac"] = Field("wav", description="audio container (16-bit PCM)")
    conditioning: dict[str, float | int | str] = Field(
        default_factory=dict, description="values for conditioners no other field covers (see /v1/models)")

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _encodable(cls, text: str) -> str:
        """Text that UTF-8 cannot encode (a lone surrogate such as ``"\\ud800"`` is valid JSON) makes the text
        encoder raise inside a batched model call and fail every request in that batch; refuse it up front."""
        _check_utf8(text)
        return text

    @field_validator("conditioning")
    @classmethod
    def _encodable_values(cls, values: dict[str, float | int | str]) -> dict[str, float | int | str]:
        """Same rule as the prompts for string conditioning values and keys (they reach conditioners too)."""
        for key, value in values.items():
            _check_utf8(key)
            if isinstance(value, str):
                _check_utf8(value)
        return values


# The request body with the examples /docs offers ("Try it out" starts from the first).
GenerateBody = Annotated[GenerateRequest, Body(openapi_examples=GENERATE_EXAMPLES)]


def _check_utf8(text: str) -> None:
    """Raise ``ValueError`` (a 422 for pydantic) naming the position of the first character UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"holds a character that cannot be encoded as UTF-8 at position {exc.start} "
                         f"(a lone surrogate such as \\ud800?)") from None


def _json_safe(value: Any) -> Any:
    """Make a validation error renderable: the rejected input itself may be NaN / Infinity (refused by strict
    JSON) or a string with a lone surrogate (refused by UTF-8), and rendering it would turn the 422 into a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def non_finite_output_handler(request: Request, exc: Exception) -> JSONResponse:
    """The model produced NaN/Inf audio (see :func:`stable_audio_ops.inference.entry.check_finite`): a 500 that
    says so, instead of an unexplained Internal Server Error, and never the noise file itself."""
    log.error("generation failed: %s", exc)
    return JSONResponse({"detail": str(exc)}, status_code=500)


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own 422 handler, with the errors made JSON-safe (see :func:`_json_safe`)."""
    return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)


class ServerState:
    """Everything the endpoints share; ``status`` goes loading -> warming_up -> ready (or failed)."""

    def __init__(self, settings: ServeSettings, loaded: LoadedModel | None,
                 on_start_failure: Callable[[str], None] | None = None):
        self.settings = settings
        self.preloaded = loaded
        self.on_start_failure = on_start_failure
        self.status = "loading"
        self.error: str | None = None
        self.engine: Engine | None = None
        self.batcher: DynamicBatcher | None = None
        self.jobs = JobStore(settings.job_ttl_s, settings.max_jobs)

    async def start(self) -> None:
        """Load (in a thread), start the batcher, warm up through it; failures are kept for the probes."""
        try:
            loaded = self.preloaded
            if loaded is None:
                s = self.settings
                loaded = await asyncio.to_thread(load_model, s.model, model_config=s.model_config, device=s.device,
                                                 name=s.model_name, tracking_uri=s.mlflow_tracking_uri,
                                                 adapter=s.adapter)
            self.engine = Engine(loaded, self.settings)
            self.batcher = DynamicBatcher(self.engine.run_batch, max_batch=self.settings.max_batch,
                                          window_s=self.settings.batch_window_ms / 1000.0,
                                          queue_size=self.settings.queue_size)
            await self.batcher.start()
            if self.settings.warmup and not self.engine.extra_conditioning_ids:
                self.status = "warming_up"
                spec = self.engine.warmup_spec()
                await self.batcher.submit(self.engine.batch_key(spec), spec, 1).future
                self.batcher.stats = BatcherStats()  # counters describe real traffic only
            self.status = "ready"
            log.info("model %s ready on %s", loaded.name, loaded.device)
        except Exception as exc:  # reported by /healthz and /readyz; the process stays up to say why
            self.status = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("model start-up failed: %s", self.error)
            if self.on_start_failure is not None:  # the serve command stops the server and exits non-zero
                self.on_start_failure(self.error)

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()


# --- request validation against the server's limits and the model ------------------------------------

def _error(field: str, message: str, value: Any, kind: str = "value_error") -> dict[str, Any]:
    return {"type": kind, "loc": ("body", field), "msg": message, "input": value}


def build_spec(body: GenerateRequest, engine: Engine, settings: ServeSettings) -> GenerationSpec:
    """Apply limits and defaults; every violation is reported at once as a 422."""
    errors = []
    seconds = body.seconds_total if body.seconds_total is not None else engine.default_seconds
    steps = body.steps if body.steps is not None else min(DEFAULTS.steps, settings.max_steps)
    sampler = body.sampler or engine.default_sampler
    if seconds > engine.max_seconds:
        errors.append(_error("seconds_total", f"seconds_total must be <= {engine.max_seconds:g} (server/model limit)",
                             seconds, "less_than_equal"))
    if steps > settings.max_steps:
        errors.append(_error("steps", f"steps must be <= {settings.max_steps} (server limit)", steps,
                             "less_than_equal"))
    if body.batch_size > settings.max_batch:
        errors.append(_error("batch_size", f"batch_size must be <= {settings.max_batch} (server limit)",
                             body.batch_size, "less_than_equal"))
    for name in ("prompt", "negative_prompt"):
        text = getattr(body, name)
        if len(text) > settings.max_prompt_length:
            errors.append(_error(name, f"{name} must have at most {settings.max_prompt_length} characters "
                                 f"(got {len(text)})", len(text), "string_too_long"))
    if sampler not in engine.samplers:
        errors.append(_error("sampler", f"unknown sampler {sampler!r} for a {engine.objective} model; known: "
                             f"{', '.join(sorted(engine.samplers))}", sampler))
    missing = [k for k in engine.extra_conditioning_ids if k not in body.conditioning]
    if missing:
        errors.append(_error("conditioning", f"this model also needs conditioning values for: {', '.join(missing)}",
                             body.conditioning))
    unknown = sorted(set(body.conditioning) - set(engine.extra_conditioning_ids))
    if unknown:
        errors.append(_error("conditioning", f"unknown conditioning keys {unknown}; this model takes "
                             f"{engine.extra_conditioning_ids or 'none'} here", body.conditioning))
    if errors:
        raise RequestValidationError(errors)
    seed = body.seed if body.seed >= 0 else secrets.randbelow(SEED_LIMIT)
    return GenerationSpec(prompt=body.prompt, negative_prompt=body.negative_prompt, seconds_total=float(seconds),
                          steps=int(steps), cfg_scale=float(body.cfg_scale), seed=int(seed), sampler=sampler,
                          batch_size=body.batch_size, format=body.format,
                          sample_size=engine.sample_size_for(seconds), num_samples=engine.num_samples_for(seconds),
                          conditioning=dict(body.conditioning))


def _unavailable(detail: str, retry_after: int) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(retry_after)})


def _result_headers(result: GenerationResult, spec_or_job: dict[str, Any]) -> dict[str, str]:
    headers = {"X-Seed": str(result.seeds[0]), "X-Seeds": ",".join(map(str, result.seeds)),
               "X-Sample-Rate": str(result.sample_rate), "X-Num-Samples": str(result.num_samples)}
    headers.update({k: str(v) for k, v in spec_or_job.items()})
    return headers


def _job_view(job: Job, request: Request) -> dict[str, Any]:
    """Job as JSON, with its sampler progress; URLs are root-relative paths so they stay right behind a proxy."""
    progress = job.work.payload.progress
    view = {"id": job.id, "status": job.status, "created": job.created, "params": job.params,
            "status_url": request.app.url_path_for("get_job", job_id=job.id), **progress.as_dict(),
            "elapsed_s": None if progress.started is None else round(progress.clock() - progress.started, 2)}
    if job.status == "succeeded":
        result: GenerationResult = job.result
        outputs = range(len(result.audio))
        audio_path = request.app.url_path_for("get_job_audio", job_id=job.id)
        picture_path = request.app.url_path_for("get_job_spectrogram", job_id=job.id)
        view.update(seeds=result.seeds, outputs=len(result.audio), media_type=result.media_type,
                    sample_rate=result.sample_rate, num_samples=result.num_samples,
                    audio_urls=[f"{audio_path}?index={i}" for i in outputs],
                    spectrogram_urls=[f"{picture_path}?index={i}" for i in outputs])
    if job.error is not None:
        view["error"] = job.error
    return view


# --- the app ---------------------------------------------------------------------------------------

def create_app(settings: ServeSettings | None = None, *, loaded: LoadedModel | None = None,
               on_start_failure: Callable[[str], None] | None = None) -> FastAPI:
    """The FastAPI app. ``loaded`` injects an already loaded model (tests, notebooks); otherwise
    ``settings.model`` is loaded at start-up. ``on_start_failure(reason)`` is called when loading or warm-up
    fails (the serve command stops there; without it the process stays up and the probes say why)."""
    settings = settings or ServeSettings.from_env()
    state = ServerState(settings, loaded, on_start_failure)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        starter = asyncio.create_task(state.start(), name="sao-model-start")
        try:
            yield
        finally:
            if not starter.done():
                starter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starter
            await state.stop()

    app = FastAPIOffline(title="stable-audio-ops", version="0.1.0", lifespan=lifespan,
                         description=API_DESCRIPTION, swagger_ui_parameters={"persistAuthorization": True})
    app.state.sao = state
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(NonFiniteOutputError, non_finite_output_handler)
    bearer = HTTPBearer(auto_error=False, bearerFormat="SAO_API_TOKEN",
                        description="needed for /v1/* when the server runs with SAO_API_TOKEN set; the value is "
                                    "that token (without a token set, the server accepts requests without it)")

    def require_token(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if settings.api_token is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), settings.api_token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    def ready_engine() -> tuple[Engine, DynamicBatcher] | JSONResponse:
        if state.status != "ready" or state.engine is None or state.batcher is None:
            detail = f"model not ready ({state.status})" + (f": {state.error}" if state.error else "")
            return _unavailable(detail, NOT_READY_RETRY_S)
        return state.engine, state.batcher

    def submit(body: GenerateRequest) -> tuple[GenerationSpec, Any] | JSONResponse:
        ready = ready_engine()
        if isinstance(ready, JSONResponse):
            return ready
        engine, batcher = ready
        spec = build_spec(body, engine, settings)
        try:
            work = batcher.submit(engine.batch_key(spec), spec, spec.batch_size)
        except QueueFullError as exc:
            return _unavailable(str(exc), exc.retry_after)
        return spec, work

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/healthz", tags=["probes"], response_model=Health,
             responses={503: {"model": Health, "description": "the model failed to load (restart needed)"}})
    async def healthz() -> JSONResponse:
        """Liveness: the process serves HTTP. 503 when the model failed to load (restart needed)."""
        if state.status == "failed":
            return JSONResponse({"status": "failed", "error": state.error}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["probes"], response_model=Readiness,
             responses={503: {"model": Readiness, "description": "loading, warming up or failed; see Retry-After"}})
    async def readyz() -> JSONResponse:
        """Readiness: weights loaded and the warm-up generation done."""
        body = {"ready": state.status == "ready", "status": state.status}
        if state.error:
            body["error"] = state.error
        if state.status != "ready":
            return JSONResponse(body, status_code=503, headers={"Retry-After": str(NOT_READY_RETRY_S)})
        return JSONResponse(body)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], tags=["v1"], responses=error_responses(401))

    @v1.get("/models", response_model=ModelList)
    async def list_models() -> dict[str, Any]:
        """The served model, what it accepts, and the server's limits."""
        limits = {"max_seconds": state.engine.max_seconds if state.engine else settings.max_seconds,
                  "max_steps": settings.max_steps, "max_batch": settings.max_batch,
                  "max_prompt_length": settings.max_prompt_length, "queue_size": settings.queue_size}
        entry: dict[str, Any] = {"id": settings.model_name or settings.model, "object": "model",
                                 "status": state.status, "limits": limits}
        if state.engine is not None:
            loaded = state.engine.loaded
            entry.update(id=loaded.name, source=loaded.source, device=str(loaded.device),
                         registry=loaded.registry or None, **state.engine.describe())
            entry["defaults"] = {"seconds_total": state.engine.default_seconds,
                                 "steps": min(DEFAULTS.steps, settings.max_steps), "cfg_scale": DEFAULTS.cfg_scale,
                                 "sampler": state.engine.default_sampler,
                                 "example_prompts": state.engine.example_prompts(),
                                 "demo_steps": state.engine.demo_steps()}
        return {"object": "list", "data": [entry]}

    @v1.post("/generate", response_class=Response, responses={
        200: {"content": {"audio/wav": {}, "audio/flac": {}, "application/zip": {}},
              "description": "the audio file (a zip of files when batch_size > 1); headers X-Seed(s), "
                             "X-Sample-Rate, X-Num-Samples, X-Batch-Items"},
        **error_responses(500, 503)})
    async def generate(body: GenerateBody, request: Request) -> Response:
        """Generate and return the audio in the response (use /v1/jobs for long generations).

        A client that disconnects before its audio is ready cancels its work (see serving.disconnect)."""
        submitted = submit(body)
        if isinstance(submitted, JSONResponse):
            return submitted
        spec, work = submitted
        try:
            result: GenerationResult = await result_unless_disconnected(request.receive, work.future)
        except ClientDisconnected:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except NonFiniteOutputError:
            raise
        except Exception as exc:  # this request's own failure (a shared call that failed was retried alone)
            log.error("generation failed: %s: %s", type(exc).__name__, exc)
            return JSONResponse({"detail": f"generation failed: {type(exc).__name__}: {exc}"}, status_code=500)
        headers = _result_headers(result, {"X-Batch-Items": work.batch_items})
        if len(result.audio) == 1:
            headers["Content-Disposition"] = f'attachment; filename="sao_{result.seeds[0]}.{result.format}"'
            return Response(result.audio[0], media_type=result.media_type, headers=headers)
        headers["Content-Disposition"] = f'attachment; filename="sao_{result.seeds[0]}.zip"'
        return Response(result.zip_bytes(), media_type="application/zip", headers=headers)

    @v1.post("/jobs", status_code=202, response_model=JobView, responses=error_responses(503))
    async def create_job(body: GenerateBody, request: Request) -> JSONResponse:
        """Queue a generation; poll ``status_url`` until ``succeeded``, then fetch ``audio_urls``."""
        submitted = submit(body)
        if isinstance(submitted, JSONResponse):
            return submitted
        spec, work = submitted
        params = {"prompt": spec.prompt, "negative_prompt": spec.negative_prompt, "seconds_total": spec.seconds_total,
                  "steps": spec.steps, "cfg_scale": spec.cfg_scale, "seed": spec.seed, "sampler": spec.sampler,
                  "batch_size": spec.batch_size, "format": spec.format}
        job = state.jobs.add(work, params)
        view = _job_view(job, request)
        return JSONResponse(view, status_code=202, headers={"Location": view["status_url"]})

    def _job_or_404(job_id: str) -> Job:
        job = state.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r} (unknown or expired)")
        return job

    @v1.get("/jobs/{job_id}", name="get_job", response_model=JobView, responses=error_responses(404))
    async def get_job(job_id: str, request: Request) -> dict[str, Any]:
        """A job's status and sampler progress (``progress`` "i/steps", ``eta_s``); when it has succeeded, the
        URLs of its audio files and their spectrograms."""
        return _job_view(_job_or_404(job_id), request)

    def _finished_output(job_id: str, index: int) -> tuple[GenerationResult, int] | JSONResponse:
        """The job's result and a valid output index, or the 409 (not succeeded) / 404 (no such job or output)."""
        job = _job_or_404(job_id)
        if job.status != "succeeded":
            detail = f"job is {job.status}" + (f": {job.error}" if job.error else "")
            return JSONResponse({"detail": detail, "status": job.status}, status_code=409)
        result: GenerationResult = job.result
        if index >= len(result.audio):
            raise HTTPException(404, f"job has {len(result.audio)} output(s); index {index} does not exist")
        return result, index

    @v1.get("/jobs/{job_id}/audio", name="get_job_audio", response_class=Response,
            responses={200: {"content": {"audio/wav": {}, "audio/flac": {}}, "description": "output ``index``"},
                       **error_responses(404, 409)})
    async def get_job_audio(job_id: str, index: int = Query(0, ge=0)) -> Response:
        finished = _finished_output(job_id, index)
        if isinstance(finished, JSONResponse):
            return finished
        result, index = finished
        headers = _result_headers(result, {"X-Seed": result.seeds[index]})
        headers["Content-Disposition"] = f'attachment; filename="sao_{result.seeds[index]}.{result.format}"'
        return Response(result.audio[index], media_type=result.media_type, headers=headers)

    @v1.get("/jobs/{job_id}/spectrogram.png", name="get_job_spectrogram", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "spectrogram of output ``index``"},
                       **error_responses(404, 409)})
    async def get_job_spectrogram(job_id: str, index: int = Query(0, ge=0)) -> Response:
        """Log-magnitude spectrogram (time in s, frequency in Hz) of a finished job's output ``index``."""
        finished = _finished_output(job_id, index)
        if isinstance(finished, JSONResponse):
            return finished
        result, index = finished
        png = await asyncio.to_thread(spectrogram_png, result.audio[index], f"seed {result.seeds[index]}")
        return Response(png, media_type="image/png")

    @v1.delete("/jobs/{job_id}", status_code=204, responses=error_responses(404))
    async def delete_job(job_id: str) -> Response:
        """Forget a job; one still queued or running is cancelled (a running call stops at its next step
        when no other request shares it)."""
        _job_or_404(job_id)
        state.jobs.delete(job_id)
        return Response(status_code=204)

    @v1.get("/stats", response_model=Stats)
    async def stats() -> dict[str, Any]:
        """Batching counters since start-up (model calls, items per call, failed / retried / abandoned calls,
        rejections), queue depth and jobs by status: how well requests share model calls."""
        batcher = state.batcher
        return {"status": state.status,
                "batcher": batcher.stats.as_dict() if batcher else None,
                "queued_items": batcher.queued_items if batcher else 0,
                "running_items": batcher.running_items if batcher else 0,
                "jobs": state.jobs.counts()}

    app.include_router(v1)
    return app
