"""Caption adherence without CLAP: a linear probe trained on real clips' embeddings.

No pip package ships CLAP weights, so "does the note sound like the caption" is asked of a classifier
fitted on *real* labelled clips (instrument, dynamic): a generated note whose embedding classifies as the
asked label adheres to that part of its caption. The probe is trained on the reference half only, so
the real held-out set's score is a ceiling and noise or sines land near chance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class CaptionProbe:
    """A fitted multinomial logistic regression (on standardised features) and its label set."""

    pipeline: Any
    classes: tuple[str, ...]

    def predict(self, embeddings: np.ndarray) -> list[str]:
        x = np.asarray(embeddings, dtype=np.float64)
        if len(x) == 0:
            return []
        return [str(label) for label in self.pipeline.predict(x)]


def fit_caption_probe(embeddings: np.ndarray, labels: Sequence[Any], c: float = 1.0, max_iter: int = 2000,
                      seed: int = 0) -> CaptionProbe:
    """Fit ``StandardScaler -> LogisticRegression`` on ``[N, D]`` embeddings and their labels.

    Needs at least two distinct labels. Labels are compared as strings.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray([str(label) for label in labels])
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"fit_caption_probe: {x.shape} embeddings for {len(y)} labels")
    classes = tuple(sorted(set(y.tolist())))
    if len(classes) < 2:
        raise ValueError(f"fit_caption_probe: need at least 2 distinct labels, got {list(classes)}")
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
    pipeline.fit(x, y)
    return CaptionProbe(pipeline=pipeline, classes=classes)


def probe_accuracy(probe: CaptionProbe, embeddings: np.ndarray, labels: Sequence[Any]) -> float:
    """Share of clips classified as their asked label (a label the probe never saw counts as wrong)."""
    wanted = [str(label) for label in labels]
    if len(wanted) != len(embeddings):
        raise ValueError(f"probe_accuracy: {len(embeddings)} embeddings for {len(wanted)} labels")
    if not wanted:
        return float("nan")
    predicted = probe.predict(embeddings)
    return float(np.mean([p == w for p, w in zip(predicted, wanted, strict=True)]))
