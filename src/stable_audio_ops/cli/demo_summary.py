"""What ``make demo`` prints at the end: where the outputs are, and how to serve the model that exists.

Why a command and not fixed ``echo`` lines: the evaluation may (rightly) refuse to promote a version that
misses its floors, and then ``models:/NAME@champion`` does not exist. Telling the user to serve it would
end their first session with an MLflow "alias not found". This reads ``promotion.json`` and points at the
champion when there is one, otherwise at the ``challenger`` alias, saying why it was not promoted.

    python -m stable_audio_ops.cli.demo_summary --promotion data/08_reporting/promotion.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TRACKING = "sqlite:///mlflow/mlflow.db"


def serving_alias(decision: dict[str, Any]) -> tuple[str, str]:
    """``(alias, why)`` of the version to serve: the champion if any, else the just-registered challenger."""
    if decision.get("champion"):
        return "champion", f"version {decision['champion']} is champion"
    reason = decision.get("reason") or "not promoted"
    return "challenger", f"no champion: {reason}"


def summary_lines(promotion: dict[str, Any], python: str = ".venv/bin/python") -> list[str]:
    lines = [
        "Report:          data/08_reporting/{metrics.json,promotion.json,evaluation_report.md,plots/}",
        "Models:          data/06_models/autoencoder.safetensors, data/06_models/latent_diffusion.safetensors",
        f"MLflow UI:       {Path(python).parent / 'mlflow'} ui --backend-store-uri {TRACKING} --host 127.0.0.1 "
        "--port 5000  -> http://127.0.0.1:5000",
    ]
    for stage in ("autoencoder", "latent_diffusion"):
        decision = promotion.get(stage)
        if isinstance(decision, dict):
            _, why = serving_alias(decision)
            lines.append(f"{stage + ':':<16} {decision.get('model', '?')} - {why}")
    decision = promotion.get("latent_diffusion") or {}
    name = decision.get("model", "stable-audio-ops-latent-diffusion")
    alias, _ = serving_alias(decision)
    uri = f"models:/{name}@{alias}"
    if alias != "champion":
        lines.append("warning:         the generator below missed its promotion floors (see evaluation_report.md);"
                     " it is served for a look, not for use")
    lines += [
        f"{'Serve ' + alias + ':':<16} {python} -m stable_audio_ops.cli.serve --model {uri} "
        f"--mlflow-tracking-uri {TRACKING} --port 8000",
        "Web page:        http://127.0.0.1:8000/   (API docs: http://127.0.0.1:8000/docs)",
        f"Generate:        {python} -m stable_audio_ops.cli.generate --model {uri} --tracking-uri {TRACKING} "
        "--prompt 'a flute playing G4, soft' --seconds 1.5 --steps 50 -o flute.wav",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--promotion", default="data/08_reporting/promotion.json")
    parser.add_argument("--python", default=".venv/bin/python", help="interpreter shown in the commands")
    args = parser.parse_args(argv)
    path = Path(args.promotion)
    if not path.is_file():
        print(f"error: {path} not found: did the evaluation stage run?", file=sys.stderr)
        return 1
    try:
        promotion = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        print(f"error: {path} is not valid JSON: {exc}", file=sys.stderr)
        return 1
    print("\n".join(summary_lines(promotion, args.python)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
