"""``python -m stable_audio_ops.cli.serve``: run the generation API and web page with uvicorn.

Flags override the ``SAO_*`` environment variables (see :mod:`stable_audio_ops.serving.settings`);
the bearer token is only read from ``SAO_API_TOKEN`` so it never shows up in a process listing.
``models:/`` sources come from ``--mlflow-tracking-uri``, else ``MLFLOW_TRACKING_URI``/``SAO_MLFLOW_TRACKING_URI``,
else the project's ``sqlite:///mlflow/mlflow.db``. The server answers ``/healthz`` at once and loads the model
in the background; when that load (or the warm-up) fails, the command stops the server and exits with 1,
so a supervisor sees the failure instead of a process that only answers 503.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from stable_audio_ops.cli.help_format import HelpFormatter
from stable_audio_ops.cli.logs import configure_logging
from stable_audio_ops.errors import StableAudioOpsError
from stable_audio_ops.serving.settings import ENV_PREFIX, ServeSettings


def _env(field: str) -> str:
    """Where a server setting's default comes from, for ``--help``."""
    value = getattr(ServeSettings, field)
    fallback = "torch's own" if value is None else value
    return f"(default: ${ENV_PREFIX}{field.upper()}, else {fallback})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stable_audio_ops.cli.serve", allow_abbrev=False, formatter_class=HelpFormatter,
                                description="Serve a conditioned diffusion model over HTTP (FastAPI + uvicorn).")
    p.add_argument("--model", default=None,
                   help="models:/NAME@alias, models:/NAME/VERSION, a .safetensors/.ckpt file or a model folder "
                        "(env SAO_MODEL)")
    p.add_argument("--model-config", default=None, help="model config JSON if the checkpoint embeds none")
    p.add_argument("--model-name", default=None, help="id reported by /v1/models")
    p.add_argument("--adapter", default=None, help="LoRA adapter file applied onto --model without merging (default: $SAO_ADAPTER, else none)")
    p.add_argument("--mlflow-tracking-uri", "--tracking-uri", default=None,
                   help="MLflow tracking/registry URI for models:/ sources (default: $SAO_MLFLOW_TRACKING_URI or "
                        "$MLFLOW_TRACKING_URI, else the project's sqlite:///mlflow/mlflow.db, as train.py)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--max-seconds", type=float, default=None, help=f"longest clip a request may ask for {_env('max_seconds')}")
    p.add_argument("--max-steps", type=int, default=None, help=f"most sampler steps per request {_env('max_steps')}")
    p.add_argument("--max-batch", type=int, default=None, help=f"items per model call (1 = no batching) {_env('max_batch')}")
    p.add_argument("--max-prompt-length", type=int, default=None, help=f"characters {_env('max_prompt_length')}")
    p.add_argument("--queue-size", type=int, default=None, help=f"items allowed to wait before 503 {_env('queue_size')}")
    p.add_argument("--batch-window-ms", type=float, default=None,
                   help=f"0 = never wait for companions {_env('batch_window_ms')}")
    p.add_argument("--torch-threads", type=int, default=None, help=f"torch threads of the worker {_env('torch_threads')}")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                   help=f"bf16: diffusion network under bfloat16 autocast (~2x faster on AMX CPUs and GPUs) {_env('precision')}")
    p.add_argument("--no-warmup", action="store_true", help="skip the warm-up generation")
    p.add_argument("--fixed-length", action="store_true",
                   help="always generate the model's sample_size and trim to the requested duration")
    p.add_argument("--log-level", default="info", help="uvicorn and package log level")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The command's implementation loads torch and FastAPI: imported after argument parsing so --help and flag
    # errors answer at once (entry points are the one place project imports wait inside a function).
    import uvicorn

    from stable_audio_ops.serving.app import create_app
    from stable_audio_ops.tracking.store import command_tracking_uri

    configure_logging(args.log_level)
    try:
        settings = ServeSettings.from_env(
            model=args.model, model_config=args.model_config, model_name=args.model_name, adapter=args.adapter,
            mlflow_tracking_uri=args.mlflow_tracking_uri, device=args.device, max_seconds=args.max_seconds,
            max_steps=args.max_steps, max_batch=args.max_batch, max_prompt_length=args.max_prompt_length,
            queue_size=args.queue_size, batch_window_ms=args.batch_window_ms, torch_threads=args.torch_threads,
            precision=args.precision,
            warmup=False if args.no_warmup else None, fixed_length=True if args.fixed_length else None)
        settings = settings.replace(mlflow_tracking_uri=command_tracking_uri(settings.mlflow_tracking_uri))
        if not settings.model:
            build_parser().error("no model: pass --model or set SAO_MODEL")
        if not settings.model.startswith("models:/") and not Path(settings.model).expanduser().exists():
            build_parser().error(f"--model {settings.model!r} does not exist")
        if settings.adapter and not Path(settings.adapter).expanduser().is_file():
            build_parser().error(f"--adapter {settings.adapter!r} is not a file")
    except StableAudioOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failures: list[str] = []
    server: uvicorn.Server | None = None

    def stop_on_failure(reason: str) -> None:
        """The model cannot be served: stop uvicorn (it exits its loop at the next tick) and remember why."""
        failures.append(reason)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_start_failure=stop_on_failure)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level))
    server.run()
    if failures:
        print(f"error: cannot serve {settings.model}: {failures[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
