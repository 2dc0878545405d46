"""Benchmark: the HTTP generation server with and without dynamic batching.

Starts the real server (``python -m stable_audio_ops.cli.serve``, uvicorn on 127.0.0.1) twice:
batched (``--max-batch 16 --batch-window-ms W``) and unbatched (``--max-batch 1 --batch-window-ms 0``),
and at concurrency 1, 4 and 16 sends ``POST /v1/generate`` requests of one length from an asyncio
client (each worker sends its next request when the previous one returns). Reports requests/s,
p50/p99 latency and the mean items per model call from ``/v1/stats``. Both servers run side by side
and the modes alternate round by round (median of ``--rounds``), so a busy machine skews both alike.
The issue's target: batched >= 3x unbatched throughput at concurrency 16.

Abandoned burst (issue 9): on the batched server, ``--abandon-clients`` clients each send a long request
and disconnect after ``--abandon-after-s``; then a normal request is timed and compared with its latency
before the burst, and ``/v1/stats`` says how many calls were stopped early and how many items ran.
``--only-abandon`` runs just this scenario (its result replaces the ``abandoned_burst`` entry).

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
def server(model: str, extra: list[str], threads: int | None, precision: str | None = None):
    port = free_port()
    cmd = [sys.executable, "-m", "stable_audio_ops.cli.serve", "--model", model, "--port", str(port),
           "--host", "127.0.0.1", "--queue-size", "1024", "--log-level", "warning", *extra]
    if threads:
        cmd += ["--torch-threads", str(threads)]
    if precision:
        cmd += ["--precision", precision]
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


async def _give_up(base: str, body: dict, after_s: float) -> bool:
    """Send ``body`` and close the connection after ``after_s``; True when the client did give up."""
    try:
        async with httpx.AsyncClient(base_url=base, timeout=after_s) as client:
            await client.post("/v1/generate", json=body)
    except httpx.TimeoutException:
        return True
    return False


async def _normal_latency_ms(base: str, body: dict, repeats: int) -> list[float]:
    out = []
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        for i in range(repeats):
            started = time.perf_counter()
            res = await client.post("/v1/generate", json={**body, "seed": i})
            res.raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
    return out


async def abandoned_burst(base: str, normal: dict, long: dict, clients: int, after_s: float) -> dict:
    """Latency of a normal request before and right after ``clients`` clients abandoned long requests."""
    before = await _normal_latency_ms(base, normal, 5)
    async with httpx.AsyncClient(base_url=base) as client:
        stats_before = (await client.get("/v1/stats")).json()["batcher"]
    gave_up = await asyncio.gather(*(_give_up(base, {**long, "seed": i}, after_s) for i in range(clients)))
    after = await _normal_latency_ms(base, normal, 1)
    async with httpx.AsyncClient(base_url=base) as client:
        stats = (await client.get("/v1/stats")).json()
    b = stats["batcher"]
    return {"clients": clients, "gave_up": sum(gave_up), "give_up_after_s": after_s, "abandoned_request": long,
            "normal_request": normal, "normal_p50_ms_before": round(float(np.median(before)), 1),
            "normal_ms_right_after": round(after[0], 1),
            "abandoned_calls": b.get("abandoned_calls", 0) - stats_before.get("abandoned_calls", 0),
            "items_that_ran": b["items"] - stats_before["items"] - 1,
            "queued_items_after": stats["queued_items"], "running_items_after": stats["running_items"]}


def run_abandoned_burst(args: argparse.Namespace, normal: dict) -> dict:
    long = {"seconds_total": args.abandon_seconds, "steps": args.abandon_steps, "cfg_scale": args.cfg_scale}
    extra = [a.format(window=args.window_ms) for a in MODES["batched"]]
    with server(args.model, extra, args.torch_threads, args.precision) as base:
        asyncio.run(load(base, normal, 4, 8))  # warm
        row = asyncio.run(abandoned_burst(base, normal, long, args.abandon_clients, args.abandon_after_s))
    print(f"abandoned burst: {row['gave_up']}/{row['clients']} clients gave up after {row['give_up_after_s']} s; "
          f"next normal request {row['normal_ms_right_after']} ms (p50 before {row['normal_p50_ms_before']} ms); "
          f"{row['abandoned_calls']} calls stopped early, {row['items_that_ran']} burst items reached the model",
          flush=True)
    return row


def write_report(out: Path, report: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")


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
    parser.add_argument("--precision", choices=("fp32", "bf16"), default=None, help="the servers' --precision")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "serving.json"))
    parser.add_argument("--abandon-clients", type=int, default=64, help="clients of the abandoned burst")
    parser.add_argument("--abandon-after-s", type=float, default=3.0, help="when those clients disconnect")
    parser.add_argument("--abandon-seconds", type=float, default=0.5, help="duration of their requests")
    parser.add_argument("--abandon-steps", type=int, default=100, help="steps of their requests")
    parser.add_argument("--only-abandon", action="store_true", help="run only the abandoned-burst scenario")
    args = parser.parse_args()

    body = {"seconds_total": args.seconds, "steps": args.steps, "cfg_scale": args.cfg_scale}
    out = Path(args.out)
    if args.only_abandon:
        report = json.loads(out.read_text()) if out.exists() else {"benchmark": "serving"}
        report["abandoned_burst"] = run_abandoned_burst(args, body)
        write_report(out, report)
        return 0
    rounds: dict[str, dict[int, list[dict]]] = {mode: {c: [] for c in args.concurrency} for mode in MODES}
    with contextlib.ExitStack() as stack:
        bases = {mode: stack.enter_context(server(args.model, [a.format(window=args.window_ms) for a in extra],
                                                  args.torch_threads, args.precision))
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
                    "precision": args.precision or "fp32",
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "cuda": torch.cuda.is_available(), "client": "same machine (asyncio + httpx)"},
        "results": results,
        "abandoned_burst": run_abandoned_burst(args, body),
    }
    print(f"speedup batched/unbatched by concurrency: {speedup}  (target at {top}: >= 3x)")
    write_report(out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
