"""Which entries of the committed ``dvc.lock`` are stale against the code and configs they were recorded for.

Why: ``dvc.lock`` says which code, configs and parameters produced the data and models of the last demo run. Every
commit to ``src/stable_audio_ops`` (a dependency of every stage) makes it stale, and a fresh clone then sees
``dvc status`` report every stage changed with no hint why. ``dvc status`` itself cannot tell the two apart on a
clean clone, where the data outputs are simply absent. This check looks only at what git ships: dependencies
outside ``data/`` (hashed the way DVC hashes them, ``.dvcignore`` honoured) and ``params`` values; missing data
is never an error.

``python -m pipelines.dvc_lock`` lists the stale entries (exit 0); ``--strict`` exits 1 when there are any (the
release routine: refresh ``dvc.lock`` with ``dvc repro`` or ``make demo`` and commit it, see "Release routine" in README.md).

An optional stage that was never run (``lm``, ``diffusion_uncond``: not in ``dvc.lock``, and no locked stage depends on
its outputs) is listed as "not run" but is not stale: ``make demo`` does not run it, so its absence from the lock
says nothing about the demo's data. Once it is run and locked, it is checked like every other stage; a stage missing
from the lock that a locked stage depends on stays stale.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stable_audio_ops.tracking.lineage import dvc_hash

# Dependencies under these folders are pipeline data (absent on a clean clone), not code or config.
DATA_PREFIXES = ("data/",)


@dataclass(frozen=True)
class Stale:
    """One lock entry that no longer matches the working tree."""

    stage: str
    what: str
    detail: str
    blocking: bool = True  # False: an optional stage never run (reported, never fails --strict)

    def __str__(self) -> str:
        return f"{self.stage}: {self.what}: {self.detail}"


def _param_value(values: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return values


def _stale_params(stage: str, params: dict[str, dict[str, Any]], root: Path) -> list[Stale]:
    found = []
    for file, recorded in params.items():
        path = root / file
        current = yaml.safe_load(path.read_text()) if path.is_file() else None
        for key, value in recorded.items():
            if _param_value(current, key) != value:
                found.append(Stale(stage, f"params {file}:{key}", "value differs from dvc.lock"))
    return found


def _paths(entries: Any) -> list[str]:
    """The paths of a ``deps`` / ``outs`` / ``metrics`` / ``plots`` list (strings or one-key mappings)."""
    return [str(next(iter(e))) if isinstance(e, dict) else str(e) for e in entries or []]


def _overlap(a: str, b: str) -> bool:
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _needed_by_locked(stage: str, stages: dict[str, Any], locked: dict[str, Any]) -> bool:
    """Whether a locked stage depends on one of ``stage``'s outputs (then a missing lock entry matters)."""
    spec = stages[stage]
    outs = [p for key in ("outs", "metrics", "plots") for p in _paths(spec.get(key))]
    return any(_overlap(dep, out) for other in locked if other in stages and other != stage
               for dep in _paths(stages[other].get("deps")) for out in outs)


def _stale_definitions(stages: dict[str, Any], locked: dict[str, Any]) -> list[Stale]:
    """Stages of ``dvc.yaml`` whose command or code/config dependencies the lock does not record; a stage the lock
    lacks is blocking unless it is an optional one that no locked stage depends on (module doc)."""
    found = []
    for stage, spec in stages.items():
        entry = locked.get(stage)
        if entry is None:
            if _needed_by_locked(stage, stages, locked):
                found.append(Stale(stage, "stage", "in dvc.yaml, not in dvc.lock (a locked stage depends on it)"))
            else:
                found.append(Stale(stage, "stage", "in dvc.yaml, not run yet (not in dvc.lock; no locked stage "
                                   "depends on it): not checked", blocking=False))
            continue
        if spec.get("cmd") != entry.get("cmd"):
            found.append(Stale(stage, "cmd", f"{spec.get('cmd')!r} in dvc.yaml, {entry.get('cmd')!r} in dvc.lock"))
        recorded = {str(dep["path"]) for dep in entry.get("deps") or []}
        for dep in spec.get("deps") or []:
            if str(dep) not in recorded:
                found.append(Stale(stage, str(dep), "a dependency in dvc.yaml, not in dvc.lock"))
    return found


def stale_entries(root: str | Path = ".") -> list[Stale]:
    """Stale code/config dependencies and params of every stage in ``root/dvc.lock`` (data deps are skipped), and
    stages, commands or dependencies of ``dvc.yaml`` the lock does not record."""
    root = Path(root)
    lock = yaml.safe_load((root / "dvc.lock").read_text()) or {}
    spec = yaml.safe_load((root / "dvc.yaml").read_text()) or {}
    found = _stale_definitions(spec.get("stages") or {}, lock.get("stages") or {})
    for stage, entry in (lock.get("stages") or {}).items():
        for dep in entry.get("deps") or []:
            path = str(dep["path"])
            if path.startswith(DATA_PREFIXES):
                continue
            now = dvc_hash(path, root)
            if now is None:
                found.append(Stale(stage, path, "missing"))
            elif now != dep.get("md5"):
                found.append(Stale(stage, path, f"md5 {now} now, {dep.get('md5')} in dvc.lock"))
        found.extend(_stale_params(stage, entry.get("params") or {}, root))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="project root holding dvc.lock (default: .)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when an entry is stale")
    args = parser.parse_args(argv)
    found = stale_entries(args.root)
    stale = [entry for entry in found if entry.blocking]
    for entry in found:
        print(f"{'stale' if entry.blocking else 'not run'}: {entry}")
    if not stale:
        print("dvc.lock matches the code and configs (data outputs not checked)")
    elif not args.strict:
        print(f"{len(stale)} stale dvc.lock entries: refresh with `dvc repro` (or `make demo`) and commit dvc.lock")
    return 1 if stale and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
