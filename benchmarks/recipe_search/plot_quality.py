"""Plot held-out pitch (and instrument) accuracy against training (docs/demo-recipe-quality.png).

Reads benchmarks/results/recipe_search.json (numbers measured with ae_recipe.py; see docs/demo-recipe.md).

    .venv/bin/python benchmarks/recipe_search/plot_quality.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    data = json.loads((ROOT / "benchmarks" / "results" / "recipe_search.json").read_text())
    fig, (ae, inst, dit) = plt.subplots(1, 3, figsize=(16, 4))
    for name, points in data["autoencoder"].items():
        x, y = zip(*points, strict=True)
        ae.plot(x, y, marker="o", label=name, linewidth=2.5 if name.startswith("shipped") else 1.2)
    ae.axhline(0.95, color="grey", linestyle="--", linewidth=1)
    ae.text(0.2, 0.965, "goal 0.95", color="grey", fontsize=8)
    ae.set(xlabel="training minutes (2-core CPU, 1 thread)", ylabel="reconstruction pitch accuracy (held out)",
           title="Autoencoder", ylim=(-0.02, 1.02))
    ae.legend(fontsize=7, loc="lower right")
    for name, points in data["autoencoder_instrument_probe"].items():
        if name == "about":
            continue
        x, y = zip(*points, strict=True)
        inst.plot(x, y, marker="o", label=name, linewidth=2.5 if name.startswith("shipped") else 1.2)
    inst.axhline(0.9, color="grey", linestyle="--", linewidth=1)
    inst.text(50, 0.92, "goal 0.90 (real notes: 1.00)", color="grey", fontsize=8)
    inst.set(xlabel="autoencoder training steps", ylabel="instrument probe on reconstructions (held out)",
             title="Autoencoder: timbre (aiSFX probe)", ylim=(-0.02, 1.02))
    inst.legend(fontsize=7, loc="center right")
    for name, points in data["dit_steps"].items():
        x, y = zip(*points, strict=True)
        dit.plot(x, y, marker="o", label=name)
    dit.axhline(0.8, color="grey", linestyle="--", linewidth=1)
    dit.set(xlabel="DiT training steps (batch 32, ~0.55 s/step)", ylabel="generated pitch accuracy (unseen captions)",
            title="DiT on the autoencoder's latents", ylim=(-0.02, 1.02))
    dit.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = ROOT / "docs" / "demo-recipe-quality.png"
    fig.savefig(out, dpi=90)
    print(out)


if __name__ == "__main__":
    main()
