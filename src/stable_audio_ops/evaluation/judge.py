"""Judge generated notes against their captions, with real clips (ceiling) and noise (floor) beside them.

A generated clip is ``(audio, sample_rate, target)`` with ``target = {"midi", "instrument", "dynamic"}``
(the caption's parts); a real clip is ``(audio, sample_rate, labels)`` with the same keys. The report:

- ``pitch_acc_crepe`` / ``pitch_acc_acf``: f0 within ±50 cents of the asked note (two independent trackers);
- ``kid`` (+ ``kid_std``) and ``fd`` on the embedding, against the real reference set;
- ``inst_acc`` / ``dyn_acc``: a linear probe fitted on the real reference clips classifies the generated
  note as the asked instrument / dynamic (caption adherence);
- ``pitch_x_inst`` = pitch accuracy (of the first pitch judge, CREPE by default) x instrument accuracy:
  one number that is ~1 for real notes and ~0 for a sine (right pitch, no timbre), noise, or notes
  that ignore either part of the caption.

Each alone is fooled (KID cannot see a wrong pitch; a pitch tracker gives a sine 100 %), which is why
:func:`calibration_sets` builds comparison sets from held-out real clips, judged the same way.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stable_audio_ops.config.dataset_config import DatasetConfig
from stable_audio_ops.evaluation._audio import to_mono
from stable_audio_ops.evaluation.clap_score import ClapJudge, judge_clap
from stable_audio_ops.evaluation.distribution import distribution_distances
from stable_audio_ops.evaluation.embeddings import Embedder, get_embedder
from stable_audio_ops.evaluation.pitch import acf_f0, crepe_f0, midi_to_hz, pitch_accuracy
from stable_audio_ops.evaluation.probe import CaptionProbe, fit_caption_probe, probe_accuracy

LabelledClip = tuple[Any, int, Mapping[str, Any]]

PITCH_JUDGES = ("crepe", "acf")


@dataclass
class JudgeReference:
    """Real reference clips prepared once: their embeddings, the embedder and the caption probes."""

    embeddings: np.ndarray
    labels: list[dict[str, Any]]
    embedder: Embedder
    embedder_name: str
    instrument_probe: CaptionProbe | None
    dynamic_probe: CaptionProbe | None
    timings_ms: dict[str, float] = field(default_factory=dict)


def _fit_or_none(embeddings: np.ndarray, labels: Sequence[Any]) -> CaptionProbe | None:
    """A probe needs two distinct labels; with one (or none) there is nothing to check, so None."""
    if any(label is None for label in labels) or len({str(label) for label in labels}) < 2:
        return None
    return fit_caption_probe(embeddings, labels)


def prepare_reference(reference_real: Sequence[LabelledClip], embedder: str | Embedder = "aisfx") -> JudgeReference:
    """Embed the real reference clips and fit the instrument and dynamic probes on them."""
    if len(reference_real) < 2:
        raise ValueError(f"prepare_reference: need at least 2 real clips, got {len(reference_real)}")
    name = embedder if isinstance(embedder, str) else getattr(embedder, "__name__", type(embedder).__name__)
    started = time.perf_counter()
    embed = get_embedder(embedder)
    load_ms = (time.perf_counter() - started) * 1000.0
    started = time.perf_counter()
    embeddings = embed([(audio, sr) for audio, sr, _ in reference_real])
    embed_ms = (time.perf_counter() - started) * 1000.0 / len(reference_real)
    labels = [dict(meta) for _, _, meta in reference_real]
    return JudgeReference(
        embeddings=embeddings,
        labels=labels,
        embedder=embed,
        embedder_name=name,
        instrument_probe=_fit_or_none(embeddings, [m.get("instrument") for m in labels]),
        dynamic_probe=_fit_or_none(embeddings, [m.get("dynamic") for m in labels]),
        timings_ms={"embedder_load_ms": load_ms, "embed_ms_per_clip": embed_ms},
    )


def _pitch_f0s(name: str, clips: Sequence[LabelledClip], crepe_model: str, crepe_hop_ms: float) -> list[float]:
    if name == "crepe":
        return [crepe_f0(audio, sr, model=crepe_model, hop_ms=crepe_hop_ms) for audio, sr, _ in clips]
    return [acf_f0(audio, sr) for audio, sr, _ in clips]


def judge_generation(generated: Sequence[LabelledClip], reference_real: Sequence[LabelledClip] | JudgeReference,
                     *, embedder: str | Embedder = "aisfx", pitch_judges: Sequence[str] = PITCH_JUDGES,
                     crepe_model: str = "tiny", crepe_hop_ms: float = 50.0, cents: float = 50.0,
                     kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0,
                     clap: ClapJudge | None = None) -> dict[str, float]:
    """Judge ``generated`` clips against their targets and the real reference (see module doc).

    ``reference_real`` may be a :class:`JudgeReference` (prepared once, reused for every set judged); then
    ``embedder`` is ignored and the reference's own embedder is used. Returns flat floats (MLflow-ready):
    ``n``, ``pitch_acc_<judge>``, ``pitch_octave_err_<judge>``, ``pitch_no_estimate_<judge>``,
    ``pitch_median_cents_<judge>``, ``kid``, ``kid_std``, ``fd``, ``inst_acc``, ``dyn_acc``,
    ``pitch_x_inst`` and per-clip costs ``ms_per_clip_<judge>`` / ``ms_per_clip_embed``; with a ``clap`` judge
    also ``clap_score`` / ``clap_r1`` against each target's ``prompt`` (:mod:`.clap_score`).
    """
    if not generated:
        raise ValueError("judge_generation: no generated clips")
    unknown = [name for name in pitch_judges if name not in PITCH_JUDGES]
    if unknown:
        raise ValueError(f"unknown pitch judge(s) {unknown}; known: {', '.join(PITCH_JUDGES)}")
    reference = reference_real if isinstance(reference_real, JudgeReference) else \
        prepare_reference(reference_real, embedder)
    targets = [dict(t) for _, _, t in generated]
    missing = [key for key in ("midi", "instrument", "dynamic") if any(key not in t for t in targets)]
    if missing:
        raise ValueError(f"judge_generation: every target needs midi, instrument and dynamic; missing {missing}")
    n = len(generated)
    out: dict[str, float] = {"n": float(n)}

    for name in pitch_judges:
        started = time.perf_counter()
        f0s = _pitch_f0s(name, generated, crepe_model, crepe_hop_ms)
        out[f"ms_per_clip_{name}"] = (time.perf_counter() - started) * 1000.0 / n
        acc = pitch_accuracy(f0s, [t["midi"] for t in targets], cents=cents)
        out[f"pitch_acc_{name}"] = acc["accuracy"]
        out[f"pitch_octave_err_{name}"] = acc["octave_errors"]
        out[f"pitch_no_estimate_{name}"] = acc["no_estimate"]
        out[f"pitch_median_cents_{name}"] = acc["median_abs_cents"]

    started = time.perf_counter()
    embeddings = reference.embedder([(audio, sr) for audio, sr, _ in generated])
    out["ms_per_clip_embed"] = (time.perf_counter() - started) * 1000.0 / n
    if n >= 2:
        out.update(distribution_distances(reference.embeddings, embeddings, subsets=kid_subsets,
                                          subset_size=kid_subset_size, seed=seed))
    else:
        out.update({"kid": float("nan"), "kid_std": float("nan"), "fd": float("nan")})
    out["inst_acc"] = probe_accuracy(reference.instrument_probe, embeddings, [t["instrument"] for t in targets]) \
        if reference.instrument_probe is not None else float("nan")
    out["dyn_acc"] = probe_accuracy(reference.dynamic_probe, embeddings, [t["dynamic"] for t in targets]) \
        if reference.dynamic_probe is not None else float("nan")
    headline = next((out[f"pitch_acc_{name}"] for name in pitch_judges), float("nan"))
    out["pitch_x_inst"] = headline * out["inst_acc"]
    if clap is not None:
        out.update(judge_clap(clap, generated))
    return out


def judge_sets(sets: Mapping[str, Sequence[LabelledClip]], reference: JudgeReference,
               **kwargs: Any) -> dict[str, dict[str, float]]:
    """:func:`judge_generation` for each named set (e.g. model, real, sine, noise) against one reference."""
    return {name: judge_generation(clips, reference, **kwargs) for name, clips in sets.items()}


REPORT_COLUMNS = ("pitch_acc_crepe", "pitch_acc_acf", "kid", "fd", "inst_acc", "dyn_acc", "pitch_x_inst",
                  "clap_score", "clap_r1")


def format_report(results: Mapping[str, Mapping[str, float]], columns: Sequence[str] = REPORT_COLUMNS) -> str:
    """A Markdown table, one row per set, for reports and MLflow artifacts."""
    present = [c for c in columns if any(c in r for r in results.values())]
    lines = ["| set | n | " + " | ".join(present) + " |", "|---" * (len(present) + 2) + "|"]
    for name, row in results.items():
        cells = []
        for c in present:
            value = row.get(c, float("nan"))
            cells.append("—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}")
        lines.append(f"| {name} | {int(row.get('n', 0))} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- calibration sets


def split_reference(real: Sequence[LabelledClip], holdout_fraction: float = 0.4, seed: int = 0,
                    key: str = "instrument") -> tuple[list[LabelledClip], list[LabelledClip]]:
    """(reference, held-out): a per-``key`` stratified random split of the real clips.

    The probes and KID use the reference part; the held-out part is the "real (ceiling)" set and the
    source of the targets for the model and the other calibration sets, so no set is judged on clips the
    probe was fitted on.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for index, (_, _, meta) in enumerate(real):
        groups.setdefault(str(meta.get(key)), []).append(index)
    reference: list[int] = []
    heldout: list[int] = []
    for name in sorted(groups):
        members = [groups[name][i] for i in rng.permutation(len(groups[name]))]
        take = int(round(holdout_fraction * len(members)))
        take = min(max(take, 1 if len(members) > 1 else 0), len(members) - 1)
        heldout.extend(members[:take])
        reference.extend(members[take:])
    return [real[i] for i in sorted(reference)], [real[i] for i in sorted(heldout)]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _real(audio: np.ndarray, sr: int, target: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    return audio


def _sine(audio: np.ndarray, sr: int, target: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Pure sine at the target f0 with the real clip's RMS: right pitch, no timbre."""
    t = np.arange(len(audio)) / float(sr)
    return (math.sqrt(2.0) * _rms(audio) * np.sin(2.0 * np.pi * midi_to_hz(target["midi"]) * t)).astype(np.float32)


def _noise(audio: np.ndarray, sr: int, target: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise with the real clip's RMS: the floor of every metric."""
    return (_rms(audio) * rng.standard_normal(len(audio))).astype(np.float32)


def _silence(audio: np.ndarray, sr: int, target: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    return np.zeros_like(audio, dtype=np.float32)


CALIBRATION_KINDS: dict[str, Callable[[np.ndarray, int, Mapping[str, Any], np.random.Generator], np.ndarray]] = {
    "real": _real,
    "sine": _sine,
    "noise": _noise,
    "silence": _silence,
}


def calibration_sets(heldout_real: Sequence[LabelledClip], kinds: Sequence[str] = ("real", "sine", "noise"),
                     seed: int = 0) -> dict[str, list[LabelledClip]]:
    """Comparison sets built from held-out real clips, each clip keeping the real clip's target caption.

    ``real`` is the ceiling; ``noise`` (RMS-matched white noise) is the floor; ``sine`` (right pitch, no
    timbre) shows why pitch accuracy alone is not enough; ``silence`` is available too.
    """
    unknown = [k for k in kinds if k not in CALIBRATION_KINDS]
    if unknown:
        raise ValueError(f"unknown calibration kind(s) {unknown}; known: {', '.join(CALIBRATION_KINDS)}")
    rng = np.random.default_rng(seed)
    sets: dict[str, list[LabelledClip]] = {}
    for kind in kinds:
        make = CALIBRATION_KINDS[kind]
        clips: list[LabelledClip] = []
        for audio, sr, meta in heldout_real:
            target = {"midi": meta["midi"], "instrument": meta["instrument"], "dynamic": meta["dynamic"],
                      **{k: meta[k] for k in ("prompt", "caption") if k in meta}}  # for the CLAP score
            clips.append((make(to_mono(audio), int(sr), target, rng), int(sr), target))
        sets[kind] = clips
    return sets


def load_labelled_clips(folder: str | Path, limit: int | None = None) -> list[LabelledClip]:
    """Real clips of a demo-notes folder (``metadata.jsonl`` + ``audio/*.wav``) as ``(audio, sr, meta)``."""
    import soundfile as sf

    folder = Path(folder)
    index = folder / "metadata.jsonl"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found (render the demo notes first)")
    clips: list[LabelledClip] = []
    with index.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            meta = json.loads(line)
            audio, sr = sf.read(folder / meta["path"], dtype="float32", always_2d=True)
            clips.append((audio.T.mean(axis=0), int(sr), meta))
            if limit is not None and len(clips) >= limit:
                break
    return clips


def load_dataset_clips(dataset_config: DatasetConfig) -> list[LabelledClip]:
    """Labelled clips of every source folder of an ``audio_dir`` dataset config that holds a ``metadata.jsonl``.

    The evaluation reads the test split this way (``test_dataset_config`` of data_preparation), so it judges
    exactly the clips training never saw. Folders without labels cannot be judged against captions and are
    left out; none at all raises.
    """
    folders = [Path(source.path) for source in dataset_config.datasets if source.path]
    labelled = [folder for folder in folders if (folder / "metadata.jsonl").is_file()]
    if not labelled:
        raise FileNotFoundError(f"no metadata.jsonl in the dataset folders {[str(f) for f in folders]}: the "
                                "judges need labelled clips (instrument, midi, dynamic), e.g. the demo notes' "
                                "test split written by data_preparation")
    return [clip for folder in labelled for clip in load_labelled_clips(folder)]
