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


def plot_panel(ax, series: dict, goal: float, goal_label: str, legend_loc: str, **labels: str) -> None:
    """One panel: a line per run (the shipped one thicker) and the issue's goal as a dashed line."""
    for name, points in series.items():
        if name == "about":
            continue
        x, y = zip(*points, strict=True)
        ax.plot(x, y, marker="o", label=name, linewidth=2.5 if name.startswith("shipped") else 1.2)
    ax.axhline(goal, color="grey", linestyle="--", linewidth=1)
    ax.text(0.02, goal + 0.015, goal_label, color="grey", fontsize=8, transform=ax.get_yaxis_transform())
    ax.set(ylim=(-0.02, 1.02), **labels)
    ax.legend(fontsize=7, loc=legend_loc)


def main() -> None:
    data = json.loads((ROOT / "benchmarks" / "results" / "recipe_search.json").read_text())
    fig, (ae, inst, dit) = plt.subplots(1, 3, figsize=(16, 4))
    plot_panel(ae, data["autoencoder"], 0.95, "goal 0.95", "lower right", title="Autoencoder",
               xlabel="training minutes (2-core CPU, 1 thread)", ylabel="reconstruction pitch accuracy (held out)")
    plot_panel(inst, data["autoencoder_instrument_probe"], 0.9, "goal 0.90 (real notes: 1.00)", "center right",
               title="Autoencoder: timbre (aiSFX probe)", xlabel="autoencoder training steps",
               ylabel="instrument probe on reconstructions (held out)")
    plot_panel(dit, data["dit_steps"], 0.8, "goal 0.80", "lower right", title="DiT on the autoencoder's latents",
               xlabel="DiT training steps (batch 32)", ylabel="generated pitch accuracy (unseen captions)")
    fig.tight_layout()
    out = ROOT / "docs" / "demo-recipe-quality.png"
    fig.savefig(out, dpi=90)
    print(out)


if __name__ == "__main__":
    main()
