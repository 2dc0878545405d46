"""Benchmark: the HTTP generation server with and without dynamic batching.

Starts the real server (``python -m stable_audio_ops.cli.serve``, uvicorn on 127.0.0.1) twice:
batched (``--max-batch 16 --batch-window-ms W``) and unbatched (``--max-batch 1 --batch-window-ms 0``),
and at concurrency 1, 4 and 16 sends ``POST /v1/generate`` requests of one length from an asyncio
client (each worker sends its next request when the previous one returns). Reports requests/s,
p50/p99 latency and the mean items per model call from ``/v1/stats``. Both servers run side by side
and the modes alternate round by round (median of ``--rounds``), so a busy machine skews both alike.
The issue's target: batched >= 3x unbatched throughput at concurrency 16.

Run: ``.venv/bin/python benchmarks/bench_serving.py [--seconds 0.032] [--steps 8] [--requests 64]``.
Writes benchmarks/results/serving.json. The client runs on the same machine as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "tests" / "fixtures" / "parity" / "dit_latent_rf"
MODES = {"unbatched": ["--max-batch", "1", "--batch-window-ms", "0"],
         "batched": ["--max-batch", "16", "--batch-window-ms", "{window}"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(model: str, extra: list[str], threads: int | None):
    port = free_port()
    cmd = [sys.executable, "-m", "stable_audio_ops.cli.serve", "--model", model, "--port", str(port),
           "--host", "127.0.0.1", "--queue-size", "1024", "--log-level", "warning", *extra]
    if threads:
        cmd += ["--torch-threads", str(threads)]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "SAO_API_TOKEN": ""})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("server not ready")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def load(base: str, body: dict, concurrency: int, total: int) -> dict:
    """``concurrency`` closed-loop workers send ``total`` requests; latency per request, overall req/s."""
    latencies: list[float] = []
    failures = 0
    remaining = total
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as client:
        async def worker(index: int) -> None:
            nonlocal remaining, failures
            i = 0
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                res = await client.post("/v1/generate", json={**body, "seed": index * 100000 + i})
                latencies.append(time.perf_counter() - started)
                failures += res.status_code != 200
                i += 1

        before = (await client.get("/v1/stats")).json()["batcher"]
        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        wall = time.perf_counter() - started
        after = (await client.get("/v1/stats")).json()["batcher"]
    calls = after["calls"] - before["calls"]
    items = after["items"] - before["items"]
    lat = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": total, "failures": failures, "wall_s": round(wall, 3),
            "requests_per_s": round(total / wall, 3), "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p99_ms": round(float(np.percentile(lat, 99)), 1), "model_calls": calls,
            "mean_items_per_call": round(items / calls, 2) if calls else 0.0}


def summarize(rows: list[dict]) -> dict:
    """Median requests/s over rounds; p50/p99 over rounds' medians / worst p99; total failures."""
    return {"concurrency": rows[0]["concurrency"], "rounds": len(rows),
            "requests_per_s": round(float(np.median([r["requests_per_s"] for r in rows])), 2),
            "requests_per_s_rounds": [r["requests_per_s"] for r in rows],
            "p50_ms": round(float(np.median([r["p50_ms"] for r in rows])), 1),
            "p99_ms": round(float(max(r["p99_ms"] for r in rows)), 1),
            "mean_items_per_call": round(float(np.mean([r["mean_items_per_call"] for r in rows])), 2),
            "failures": sum(r["failures"] for r in rows), "requests": sum(r["requests"] for r in rows)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--seconds", type=float, default=0.032, help="request duration (fixture: 512 samples)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--cfg-scale", type=float, default=6.0)
    parser.add_argument("--requests", type=int, default=64, help="requests per concurrency level (min 4x level)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per level (median reported)")
    parser.add_argument("--window-ms", type=float, default=20.0, help="batch window of the batched server")
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "serving.json"))
    args = parser.parse_args()

    body = {"seconds_total": args.seconds, "steps": args.steps, "cfg_scale": args.cfg_scale}
    rounds: dict[str, dict[int, list[dict]]] = {mode: {c: [] for c in args.concurrency} for mode in MODES}
    with contextlib.ExitStack() as stack:
        bases = {mode: stack.enter_context(server(args.model, [a.format(window=args.window_ms) for a in extra],
                                                  args.torch_threads))
                 for mode, extra in MODES.items()}
        for base in bases.values():  # warm both paths
            asyncio.run(load(base, body, max(args.concurrency), 2 * max(args.concurrency)))
        # modes alternate round by round, so load from other processes on the machine hits both alike
        for c in args.concurrency:
            for r in range(args.rounds):
                for mode, base in bases.items():
                    row = asyncio.run(load(base, body, c, max(args.requests, 4 * c)))
                    rounds[mode][c].append(row)
                    print(f"{mode:>9} c={c:<3} round {r}: {row['requests_per_s']:8.2f} req/s  p50 {row['p50_ms']:8.1f} ms"
                          f"  p99 {row['p99_ms']:8.1f} ms  items/call {row['mean_items_per_call']:5.2f}  "
                          f"failures {row['failures']}", flush=True)
    results = {mode: [summarize(rows) for rows in by_c.values()] for mode, by_c in rounds.items()}
    for mode, rows in results.items():
        for row in rows:
            print(f"{mode:>9} c={row['concurrency']:<3} median {row['requests_per_s']:8.2f} req/s  "
                  f"p50 {row['p50_ms']:8.1f} ms  p99 {row['p99_ms']:8.1f} ms  items/call {row['mean_items_per_call']:5.2f}")

    speedup = {str(b["concurrency"]): round(b["requests_per_s"] / u["requests_per_s"], 2)
               for b, u in zip(results["batched"], results["unbatched"], strict=True)}
    top = str(max(args.concurrency))
    report = {
        "benchmark": "serving", "target": "batched >= 3x unbatched requests/s at concurrency 16",
        "target_met": speedup.get(top, 0) >= 3.0, "speedup_batched_over_unbatched": speedup,
        "request": body, "batch_window_ms": args.window_ms, "model": str(Path(args.model).name),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads_server": args.torch_threads or "default",
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "cuda": torch.cuda.is_available(), "client": "same machine (asyncio + httpx)"},
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"speedup batched/unbatched by concurrency: {speedup}  (target at {top}: >= 3x)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
