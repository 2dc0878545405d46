"""A training process killed with SIGKILL between checkpoints resumes from ``last.ckpt`` and finishes.

This is what happens on a preempted node: no exception handler runs, so only what the periodic
checkpoints wrote survives. The resumed run must reach the same final step with the optimizer,
scheduler and EMA state carried over (not restarted), and every file on disk must stay loadable.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from stable_audio_ops.training.checkpointing import AtomicCheckpointIO, resolve_resume_path
from tests.training.train_fixtures import start_train_cli, tiny_train_args, train_cli

pytestmark = pytest.mark.slow

MAX_STEPS = 40
EVERY = 4


def test_sigkill_between_checkpoints_then_resume(tmp_path: Path) -> None:
    save_dir = tmp_path / "ckpt"
    args = tiny_train_args(tmp_path, MAX_STEPS, EVERY)

    process = start_train_cli(args, tmp_path)
    try:
        deadline = time.monotonic() + 180
        while not list(save_dir.glob(f"*step={EVERY}.ckpt")):
            assert process.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 180 s"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()

    # every file that has a checkpoint's name is a complete checkpoint (writes are atomic)
    on_disk = {p.name: torch.load(p, map_location="cpu", weights_only=True) for p in save_dir.glob("*.ckpt")}
    newest = resolve_resume_path("last", save_dir)
    killed = on_disk[Path(newest).name]
    killed_at = killed["global_step"]
    assert killed_at == max(c["global_step"] for c in on_disk.values())
    assert EVERY <= killed_at < MAX_STEPS and killed_at % EVERY == 0  # killed between two checkpoints

    # Same command line plus --ckpt-path last: continues, does not restart
    resumed = train_cli(*args, "--ckpt-path", "last", cwd=tmp_path)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-5000:]
    assert f"step {MAX_STEPS}" in resumed.stdout
    final = torch.load(save_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["global_step"] == MAX_STEPS
    gen_steps = MAX_STEPS // 2  # generator and discriminator alternate
    # EMA counter carried over: 0.0.20 updates it every 10 global steps (after generator steps 8, 18, 28, 38)
    assert int(final["state_dict"]["autoencoder_ema.step"]) == MAX_STEPS // 10
    assert final["lr_schedulers"][0]["last_epoch"] == gen_steps  # scheduler carried over
    adam_steps = {int(s["step"]) for s in final["optimizer_states"][0]["state"].values()}
    assert adam_steps == {gen_steps}  # AdamW moments carried over
    assert {int(s["step"]) for s in final["optimizer_states"][1]["state"].values()} == {gen_steps}
    # and the weights moved on from the killed state
    key = "autoencoder.decoder.layers.0.bias"
    assert not torch.equal(final["state_dict"][key], killed["state_dict"][key])


def test_atomic_checkpoint_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")  # stands in for a failure halfway through the write

    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"global_step": 2, "bad": Unpicklable()}, target)
    assert torch.load(target, weights_only=True)["global_step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
