"""Preemption: SIGTERM (docker stop, Kubernetes, SLURM, ``timeout``) and Ctrl-C save ``last.ckpt`` at the
step reached and end the run with a non-zero exit; SLURM's SIGUSR1 requeues; an orchestrator that launched
the run fails instead of unwrapping an under-trained model.

Before these fixes a SIGTERM'd run exited 0 with ``last.ckpt`` at the last periodic step, and the Kedro
node went on as if training had finished.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from stable_audio_ops.training.stopping import EXIT_INCOMPLETE, checkpoint_step, stopped_early
from tests.training.train_fixtures import (
    REPO,
    start_train_cli,
    tiny_train_args,
    train_cli,
    train_env,
    wait_for_checkpoint,
)

# Far more steps than a signalled run reaches: the signal must land mid-run even when the machine runs the
# tiny model at 12+ steps/s and the test process is slow to notice the first checkpoint (40 steps once
# finished before the SIGINT arrived). Signalled runs stop early, so the bound costs no time.
MAX_STEPS = 400
EVERY = 4


def _periodic_steps(save_dir: Path) -> list[int]:
    return sorted(checkpoint_step(p) for p in save_dir.glob("epoch=*-step=*.ckpt"))


def _finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, (out or "") + (err or "")


def _signal_after_first_checkpoint(tmp_path: Path, signum: int) -> tuple[int, str, Path, list[str]]:
    """Start a tiny run, send ``signum`` once the first periodic checkpoint is complete, wait for the end."""
    args = tiny_train_args(tmp_path, MAX_STEPS, EVERY)
    save_dir = tmp_path / "ckpt"
    process = start_train_cli(args, tmp_path, capture=True)
    try:
        wait_for_checkpoint(process, save_dir, EVERY)
        time.sleep(0.05)  # into the next step
        os.kill(process.pid, signum)
    finally:
        code, output = _finish(process)
    return code, output, save_dir, args


@pytest.mark.slow
def test_sigterm_saves_the_current_step_exits_143_and_resumes(tmp_path: Path) -> None:
    code, output, save_dir, args = _signal_after_first_checkpoint(tmp_path, signal.SIGTERM)

    assert code == 128 + signal.SIGTERM, output[-3000:]
    stopped_at = checkpoint_step(save_dir / "last.ckpt")
    assert EVERY < stopped_at < MAX_STEPS, output[-3000:]  # past the checkpoint that existed when signalled
    assert stopped_at >= max(_periodic_steps(save_dir))
    assert f"training stopped at step {stopped_at} of {MAX_STEPS} (stopped by SIGTERM)" in output
    assert "resume with --ckpt-path last" in output

    first = next(save_dir.glob(f"*step={EVERY}.ckpt"))
    first_written = first.stat().st_mtime_ns
    resume_to = stopped_at + 2 * EVERY  # a few steps past the stop keep the resumed run short
    resumed_args = [*args[:args.index("--max-steps") + 1], str(resume_to), *args[args.index("--max-steps") + 2:]]
    resumed = train_cli(*resumed_args, "--ckpt-path", "last", cwd=tmp_path)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-5000:]
    assert f"step {resume_to}" in resumed.stdout
    assert checkpoint_step(save_dir / "last.ckpt") == resume_to
    assert first.stat().st_mtime_ns == first_written  # continued from stopped_at: step EVERY was not redone


@pytest.mark.slow
def test_ctrl_c_still_saves_and_exits_130(tmp_path: Path) -> None:
    code, output, save_dir, _ = _signal_after_first_checkpoint(tmp_path, signal.SIGINT)

    assert code == 128 + signal.SIGINT, output[-3000:]
    stopped_at = checkpoint_step(save_dir / "last.ckpt")
    # Ctrl-C interrupts inside a step (KeyboardInterrupt), SIGTERM waits for its end: >= here, > above
    assert EVERY <= stopped_at < MAX_STEPS and stopped_at >= max(_periodic_steps(save_dir))
    assert f"training stopped at step {stopped_at} of {MAX_STEPS} (stopped by SIGINT)" in output


LAUNCHER = textwrap.dedent("""
    import json, sys
    from stable_audio_ops.training.tracked import train_in_process

    model_config, dataset_config, run_dir, flags = sys.argv[1:5]
    result = train_in_process(json.load(open(model_config)), json.load(open(dataset_config)), name="preempted",
                              run_dir=run_dir, train=json.loads(flags))
    print("UNWRAP WOULD RUN NOW", result)
""")


@pytest.mark.slow
def test_the_library_call_a_kedro_node_makes_fails_when_its_container_is_stopped(tmp_path: Path) -> None:
    """``docker stop`` / Kubernetes signal the container's first process (Kedro): the SIGTERM reaches the
    training process, which saves and stops, and ``train_in_process`` raises instead of returning."""
    args = tiny_train_args(tmp_path, MAX_STEPS, EVERY)
    flags = {"batch_size": 2, "num_workers": 0, "max_steps": MAX_STEPS, "checkpoint_every": EVERY,
             "precision": "32", "accelerator": "cpu"}
    model_config, dataset_config = args[1], args[3]
    run_dir = tmp_path / "run"
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, model_config, dataset_config, str(run_dir), json.dumps(flags)],
        cwd=REPO, env=train_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    save_dir = run_dir / "checkpoints"
    try:
        wait_for_checkpoint(launcher, save_dir, EVERY)
        os.kill(launcher.pid, signal.SIGTERM)  # the launcher only, as docker stop does
    finally:
        code, output = _finish(launcher)
        time.sleep(0.5)
        try:  # nothing of the session may be left running (an orphaned training process)
            os.killpg(launcher.pid, signal.SIGKILL)
            orphaned = True
        except ProcessLookupError:
            orphaned = False

    assert code != 0 and "UNWRAP WOULD RUN NOW" not in output, output[-3000:]
    stopped_at = checkpoint_step(save_dir / "last.ckpt")
    assert stopped_at > EVERY
    assert "TrainingProcessError: training process failed (exit 143; stopped by SIGTERM" in output, output[-3000:]
    assert f"holds step {stopped_at}, resume with --ckpt-path last" in output
    assert not orphaned


def test_a_run_short_of_max_steps_is_an_error_naming_step_and_checkpoint(tmp_path: Path) -> None:
    last = tmp_path / "last.ckpt"
    early = stopped_early(12, 40, last)
    assert early is not None and early.exit_code == EXIT_INCOMPLETE == 3
    assert str(early) == (f"training stopped at step 12 of 40 (the run ended before max_steps); {last} holds "
                          "step 12; resume with --ckpt-path last (same flags)")
    assert stopped_early(40, 40, last) is None
    assert stopped_early(12, -1, last) is None  # no bound: upstream's "train until stopped"

    signalled = stopped_early(12, -1, last, signal.SIGTERM, saved_step=12)
    assert signalled.exit_code == 143 and "stopped at step 12 (stopped by SIGTERM)" in str(signalled)
    assert "no checkpoint was written" in str(stopped_early(12, 40, last, signal.SIGTERM, saved_step=None))


@pytest.mark.slow
def test_slurm_sigusr1_saves_an_hpc_checkpoint_and_requeues_the_job(tmp_path: Path) -> None:
    """Under SLURM (``#SBATCH --signal=SIGUSR1@90``) Lightning's requeue: SIGUSR1 saves ``hpc_ckpt_1.ckpt``
    and runs ``scontrol requeue <job>``; SLURM then sends SIGTERM, which ends the run with 143 as above.
    ``scontrol`` is a stand-in on PATH that records its arguments (there is no SLURM cluster here)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    env = train_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", SLURM_NTASKS="1", SLURM_JOB_NAME="train",
                    SLURM_JOB_ID="4242", SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NODEID="0",
                    SLURM_NODELIST="127.0.0.1")
    args = tiny_train_args(tmp_path, MAX_STEPS, EVERY)
    save_dir = tmp_path / "ckpt"
    process = start_train_cli(args, tmp_path, env=env, capture=True)
    try:
        wait_for_checkpoint(process, save_dir, EVERY)
        os.kill(process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 60
        while not calls.exists():
            assert process.poll() is None and time.monotonic() < deadline, "no requeue after SIGUSR1"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGTERM)  # what SLURM does to a requeued job
    finally:
        code, output = _finish(process)

    assert calls.read_text().split() == ["requeue", "4242"]
    hpc = checkpoint_step(save_dir / "hpc_ckpt_1.ckpt")
    assert hpc is not None and hpc >= EVERY, output[-3000:]
    assert code == 128 + signal.SIGTERM, output[-3000:]
    assert checkpoint_step(save_dir / "last.ckpt") >= hpc  # --ckpt-path last resumes from the newest
