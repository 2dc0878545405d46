"""Run training as its own process and wait for it.

Why a separate process: Lightning's DDP re-executes ``sys.argv`` in every extra rank. Inside a Kedro
node that would re-run the whole ``kedro run`` (a second session, a second MLflow run, upstream nodes
twice). So orchestrators (the Kedro node, DVC stages, scripts) call :func:`launch_training_process`,
which starts ``python -m stable_audio_ops.cli.train`` with plain flags; that process may then fan out
to several ranks safely. It logs into the MLflow run the caller opened (``mlflow_run_id``), and only
rank 0 logs and writes checkpoints.

A run that did not reach ``max_steps`` is an error here, whatever ended it (SIGTERM, which this process
forwards to the training process, a crash, or an exit 0 short of ``max_steps``): the caller (a Kedro node)
fails, so unwrapping and registration never run on an under-trained model.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_audio_ops.errors import StableAudioOpsError
from stable_audio_ops.training.stopping import checkpoint_step, stopped_early
from stable_audio_ops.utils.io import write_json_atomic


class TrainingProcessError(StableAudioOpsError):
    """The training process exited with an error; the message carries the end of its output."""


@dataclass(frozen=True)
class LaunchResult:
    checkpoint_path: Path
    save_dir: Path
    returncode: int


def build_train_argv(flags: dict[str, Any]) -> list[str]:
    """``{"batch_size": 4}`` -> ``["--batch-size", "4"]``; None values are left out."""
    argv: list[str] = []
    for key, value in flags.items():
        if value is None:
            continue
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


def launch_training_process(
    model_config: dict[str, Any],
    dataset_config: dict[str, Any],
    save_dir: str | Path,
    flags: dict[str, Any],
    threads: int | None = None,
    cwd: str | Path | None = None,
) -> LaunchResult:
    """Write the configs next to the checkpoints, run the train CLI, return the final checkpoint.

    The configs are written into ``save_dir`` so each checkpoint folder records exactly what trained it.
    Output streams through (the progress bar stays visible); on failure the last lines are in the error.
    """
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    model_config_path = save_dir / "model_config.json"
    dataset_config_path = save_dir / "dataset_config.json"
    write_json_atomic(model_config_path, model_config, indent=2)
    write_json_atomic(dataset_config_path, dataset_config, indent=2)

    argv = [sys.executable, "-m", "stable_audio_ops.cli.train"]
    argv += build_train_argv(
        {
            "model_config": model_config_path,
            "dataset_config": dataset_config_path,
            "save_dir": save_dir,
            **flags,
        }
    )
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
        env["SAO_TORCH_THREADS"] = str(threads)
    env.setdefault("PYTHONUNBUFFERED", "1")
    tail: deque[str] = deque(maxlen=200)
    with subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        assert process.stdout is not None
        with forward_sigterm(process):
            # Forward raw chunks, not lines: the progress bar redraws with carriage returns and no newline.
            while chunk := os.read(process.stdout.fileno(), 65536):  # retried after a signal (PEP 475)
                text = chunk.decode(errors="replace")
                sys.stdout.write(text)
                sys.stdout.flush()
                tail.append(text)
            returncode = process.wait()
    checkpoint = save_dir / "last.ckpt"
    if returncode != 0:
        raise TrainingProcessError(
            f"training process failed (exit {returncode}{_stop_note(returncode, checkpoint)}): {' '.join(argv)}"
            "\n--- last output ---\n" + "".join(tail)[-6000:]
        )
    if not checkpoint.exists():
        raise TrainingProcessError(f"training finished but wrote no final checkpoint at {checkpoint}")
    max_steps = int(flags.get("max_steps") or -1)
    early = stopped_early(checkpoint_step(checkpoint) or 0, max_steps, checkpoint)
    if early is not None:  # exit 0 but short of max_steps: never hand an under-trained model downstream
        raise TrainingProcessError(f"training process exited 0 but {early}")
    return LaunchResult(checkpoint_path=checkpoint, save_dir=save_dir, returncode=returncode)


def _stop_note(returncode: int, checkpoint: Path) -> str:
    """``; stopped by SIGTERM, last.ckpt at step N`` for a process that ended on a signal."""
    signum = returncode - 128 if returncode > 128 else -returncode
    if signum not in {s.value for s in signal.Signals}:
        return ""
    step = checkpoint_step(checkpoint)
    saved = f"; {checkpoint} holds step {step}, resume with --ckpt-path last" if step is not None else ""
    return f"; stopped by {signal.Signals(signum).name}{saved}"


@contextlib.contextmanager
def forward_sigterm(process: subprocess.Popen) -> Iterator[None]:
    """Pass SIGTERM on to the training process while it runs.

    Why: ``docker stop`` and Kubernetes signal only the container's first process (Kedro, DVC), and
    ``timeout`` only its child; the training process would run on, orphaned, or be killed without saving.
    Forwarded, it saves ``last.ckpt`` and exits 143, and this call raises. Only in the main thread
    (Python's rule for signal handlers); SIGINT needs no forwarding (the terminal signals the whole group).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def forward(signum: int, frame: Any) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
