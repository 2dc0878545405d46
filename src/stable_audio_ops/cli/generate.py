"""``python -m stable_audio_ops.cli.generate``: text (+ audio) -> WAV/FLAC with a conditioned diffusion model or an lm.

Examples::

    python -m stable_audio_ops.cli.generate --model data/06_models/latent_diffusion.safetensors \\
        --prompt "a flute playing C5, loud" --seconds 1.5 --steps 50 --cfg-scale 6 -o flute.wav
    python -m stable_audio_ops.cli.generate --model models:/latent-diffusion@champion --prompt "..." \\
        --batch-size 4 --seed 1 -o out.flac          # writes out_0.flac ... out_3.flac

The model is an unwrapped checkpoint (config embedded, beside it as model_config.json, or given with
``--model-config``) or a registered MLflow model (``models:/NAME@alias``), loaded strictly. Each batch
item is conditioned on ``{"prompt", "seconds_start", "seconds_total"}`` plus any ``--cond KEY=VALUE``
(VALUE parsed as JSON when it can be). ``--init-audio`` + ``--init-noise-level`` = audio-to-audio;
``--inpaint-audio`` + ``--mask-start/--mask-end`` (seconds to regenerate) needs an inpainting model.
``--return-latents`` writes the latents as ``.npy`` instead of audio. Audio is written as 16-bit
PCM (WAV) or FLAC by the output's extension, scaled down only if it would clip.

An ``lm`` model (codes sampled step by step, then decoded) takes ``--temperature``, ``--top-k``, ``--top-p``,
``--cfg-scale``, ``--seed`` and a length (``--max-gen-len`` code timesteps, or ``--seconds`` /
``--sample-size`` rounded up to whole code frames); the diffusion-only flags (:data:`FLAG_FAMILIES`) given
to it, or the lm-only ones given to a diffusion model, are an error naming the flag, not silently dropped.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stable_audio_ops.cli.help_format import HelpFormatter, with_more_help
from stable_audio_ops.cli.logs import configure_logging
from stable_audio_ops.data.audio_io import write_audio
from stable_audio_ops.errors import StableAudioOpsError
from stable_audio_ops.inference.defaults import GENERATION_DEFAULTS
from stable_audio_ops.utils.io import atomic_write

AUDIO_FORMATS = (".wav", ".flac")
# The model types this command generates with (the generate entry's table also has diffusion_uncond).
GENERATE_MODEL_TYPES = ("diffusion_cond", "diffusion_cond_inpaint", "lm")
# Model type -> the family of generate function it uses (others: "diffusion").
MODEL_FAMILIES = {"lm": "lm"}
# Flags that only one family's generate function takes. Their dest is the flag without "--", "-" -> "_".
FLAG_FAMILIES = {
    **dict.fromkeys(("--steps", "--sampler-type", "--sigma-min", "--sigma-max", "--cfg-interval", "--cfg-rescale",
                     "--init-audio", "--init-noise-level", "--inpaint-audio", "--mask-start", "--mask-end",
                     "--return-latents", "--negative-prompt", "--precision", "--no-trim"), "diffusion"),
    **dict.fromkeys(("--temperature", "--top-k", "--top-p", "--max-gen-len"), "lm"),
}
_UNSET = object()


def number(kind: type[int] | type[float], *, low: float | None = None, high: float | None = None,
           low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` that accepts only finite numbers in ``[low, high]`` (``(low, high]`` with
    ``low_open``). Why: ``float()`` takes "nan" and "inf", and a NaN guidance scale or a negative length went
    on to write full-scale noise or a 512-sample file with exit 0; argparse names the flag and exits 2."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low:g}, got {text!r}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high:g}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse's "invalid <name> value" wording, should it ever use it
    return parse


POSITIVE_INT = number(int, low=1)
POSITIVE = number(float, low=0, low_open=True)
NON_NEGATIVE = number(float, low=0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="generate", allow_abbrev=False, formatter_class=HelpFormatter,
                                description="Generate audio from a prompt with a conditioned diffusion model or an "
                                            "lm (multi-codebook language model).")
    p.add_argument("--model", required=True, help="unwrapped checkpoint / model folder / models:/NAME@alias")
    p.add_argument("--model-config", default=None, help="model config JSON (default: embedded or beside the model)")
    p.add_argument("--adapter", default=None, help="LoRA adapter file (fine_tune pipeline) applied onto --model "
                   "without merging")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI for models:/ sources (default: $MLFLOW_TRACKING_URI, else the "
                        "project's sqlite:///mlflow/mlflow.db, as train.py)")
    p.add_argument("--prompt", default="", help="text prompt (metadata key 'prompt')")
    p.add_argument("--negative-prompt", default=None, help="negative prompt (replaces the unconditional branch)")
    p.add_argument("--cond", action="append", default=[], metavar="KEY=VALUE",
                   help="extra conditioning metadata (repeatable; VALUE parsed as JSON when possible)")
    p.add_argument("-o", "--output", default="output.wav", help="output .wav/.flac (.npy with --return-latents); "
                   "with --batch-size > 1 an _<index> is added before the extension")
    p.add_argument("--steps", type=POSITIVE_INT, default=GENERATION_DEFAULTS.steps, help="sampler steps")
    p.add_argument("--cfg-scale", type=NON_NEGATIVE, default=GENERATION_DEFAULTS.cfg_scale,
                   help="classifier-free guidance scale (1 = off)")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=GENERATION_DEFAULTS.batch_size,
                   help="clips generated at once for the same prompt")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--sample-size", type=POSITIVE_INT, default=None, help="length in audio samples")
    length.add_argument("--seconds", type=POSITIVE, default=None, help="length in seconds (rounded up to the model's "
                        "smallest unit)")
    length.add_argument("--max-gen-len", type=POSITIVE_INT, default=None,
                        help="lm models: length in code timesteps (default: from --seconds / --sample-size, else the "
                             "config's sample_size)")
    p.add_argument("--seconds-start", type=NON_NEGATIVE, default=0.0, help="conditioning seconds_start")
    p.add_argument("--seconds-total", type=POSITIVE, default=None,
                   help="conditioning seconds_total (default: the generated length)")
    p.add_argument("--no-trim", action="store_true", help="keep the full length instead of cutting to seconds_total")
    p.add_argument("--seed", type=int, default=GENERATION_DEFAULTS.seed, help="-1 = random (printed)")
    with_more_help(p.add_argument("--sampler-type", default=None,
                                  help="sampler (default: the model objective's default), by objective"),
                   sampler_names)
    p.add_argument("--sigma-min", type=NON_NEGATIVE, default=None, help="lowest noise level (default: the model's)")
    p.add_argument("--sigma-max", type=POSITIVE, default=None, help="highest noise level (default: the model's)")
    p.add_argument("--cfg-interval", type=number(float), nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="apply guidance only for noise levels in [MIN, MAX] (default: always)")
    p.add_argument("--cfg-rescale", type=number(float, low=0, high=1), default=None,
                   help="scale_phi: CFG rescale amount in [0, 1]")
    p.add_argument("--init-audio", default=None, help="audio file for audio-to-audio")
    p.add_argument("--init-noise-level", type=NON_NEGATIVE, default=1.0,
                   help="with --init-audio: how much noise is added to it (higher = further from it)")
    p.add_argument("--inpaint-audio", default=None, help="audio file to keep outside the mask (inpainting models)")
    p.add_argument("--mask-start", type=NON_NEGATIVE, default=None, help="start of the region to regenerate (s)")
    p.add_argument("--mask-end", type=NON_NEGATIVE, default=None, help="end of the region to regenerate (s)")
    p.add_argument("--return-latents", action="store_true", help="write latents (.npy) instead of audio")
    p.add_argument("--temperature", type=NON_NEGATIVE, default=1.0,
                   help="lm models: sampling temperature (0 = greedy)")
    p.add_argument("--top-k", type=number(int, low=0), default=250,
                   help="lm models: sample from the K most likely codes (0 = all; ignored when --top-p > 0)")
    p.add_argument("--top-p", type=number(float, low=0, high=1), default=0.0,
                   help="lm models: nucleus sampling mass (0 = off, use --top-k)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: run the diffusion network under bfloat16 autocast (about 2x faster generation on "
                        "CPUs with AMX/AVX512-BF16 and on GPUs; audio within ~1e-4 relative RMS of fp32)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def sampler_names() -> str:
    """The registered sampler names per diffusion objective, for ``--help`` (the registry imports torch, so this
    runs only when the help is printed)."""
    from stable_audio_ops.sampling.samplers import DEFAULT_SAMPLER, SAMPLERS

    objectives: dict[tuple[str, ...], list[str]] = {}
    for objective, registry in SAMPLERS.items():
        objectives.setdefault(tuple(registry), []).append(objective)
    return "; ".join(f"{' / '.join(names)}: {', '.join(samplers)} (default {DEFAULT_SAMPLER[names[0]]}"
                     + "".join(f", {n}: {DEFAULT_SAMPLER[n]}" for n in names[1:]
                               if DEFAULT_SAMPLER[n] != DEFAULT_SAMPLER[names[0]]) + ")"
                     for samplers, names in objectives.items())


def flags_given(parser: argparse.ArgumentParser, argv: Sequence[str] | None, flags: Sequence[str]) -> list[str]:
    """Which of ``flags`` the command line names, even at their default value (parsed again with every such
    dest preset, which argparse keeps unless the flag is given)."""
    dests = {flag: flag[2:].replace("-", "_") for flag in flags}
    probe = parser.parse_args(argv, namespace=argparse.Namespace(**dict.fromkeys(dests.values(), _UNSET)))
    return [flag for flag, dest in dests.items() if getattr(probe, dest) is not _UNSET]


def check_flags_fit(model_type: str, given: Sequence[str]) -> None:
    """A ValueError naming each given flag that the model type's generate function does not take."""
    family = MODEL_FAMILIES.get(model_type, "diffusion")
    wrong = [flag for flag in given if FLAG_FAMILIES[flag] != family]
    if wrong:
        takers = sorted({FLAG_FAMILIES[flag] for flag in wrong})
        raise ValueError(f"this is a {model_type} model: {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} "
                         f"only for {' / '.join(takers)} models")


def diffusion_params(args: argparse.Namespace, device: Any, sample_size: int, conditioning: list[dict],
                     negative: list[dict] | None) -> dict[str, Any]:
    """The generate parameters of a diffusion model from the command line."""
    kwargs: dict[str, Any] = {}
    for name, value in (("sampler_type", args.sampler_type), ("sigma_min", args.sigma_min),
                        ("sigma_max", args.sigma_max), ("scale_phi", args.cfg_rescale)):
        if value is not None:
            kwargs[name] = value
    if args.cfg_interval is not None:
        kwargs["cfg_interval"] = tuple(args.cfg_interval)
    params = dict(steps=args.steps, cfg_scale=args.cfg_scale, conditioning=conditioning,
                  negative_conditioning=negative, batch_size=args.batch_size, sample_size=sample_size,
                  seed=args.seed, device=device, return_latents=args.return_latents,
                  trim_to_seconds_total=not args.no_trim, progress=not args.no_progress, **kwargs)
    if args.precision != "fp32":
        params["precision"] = args.precision
    if args.init_audio:
        params.update(init_audio=read_audio_file(args.init_audio), init_noise_level=args.init_noise_level)
    if args.inpaint_audio is not None:
        params["inpaint_audio"] = read_audio_file(args.inpaint_audio)
    if args.mask_start is not None:
        params.update(inpaint_mask_start_seconds=args.mask_start, inpaint_mask_end_seconds=args.mask_end)
    return params


def lm_params(args: argparse.Namespace, device: Any, sample_size: int, conditioning: list[dict],
              negative: list[dict] | None) -> dict[str, Any]:
    """The generate parameters of an lm model from the command line (``negative`` is refused before this)."""
    return dict(sample_size=sample_size, cfg_scale=args.cfg_scale, conditioning=conditioning,
                batch_size=args.batch_size, seed=args.seed, temperature=args.temperature, top_k=args.top_k,
                top_p=args.top_p, progress=not args.no_progress)


PARAM_BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {"diffusion": diffusion_params, "lm": lm_params}


def parse_cond(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--cond expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def resolve_sample_size(model: Any, config: dict, sample_size: int | None, seconds: float | None) -> int:
    """Requested length in samples, rounded up to a multiple of the model's ``min_input_length``."""
    if seconds is not None:
        sample_size = math.ceil(seconds * int(config["sample_rate"]))
    if sample_size is None:
        sample_size = int(config["sample_size"])
    unit = max(1, int(getattr(model, "min_input_length", 1)))
    return max(unit, math.ceil(sample_size / unit) * unit)


def output_paths(output: str | Path, batch_size: int, return_latents: bool) -> list[Path]:
    path = Path(output)
    if return_latents:
        path = path.with_suffix(".npy")
    elif path.suffix.lower() not in AUDIO_FORMATS:
        raise ValueError(f"output must end in {' or '.join(AUDIO_FORMATS)} (got {path.name!r})")
    if batch_size == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(batch_size)]


def read_audio_file(path: str) -> tuple[int, Any]:
    import soundfile as sf
    import torch

    data, sr = sf.read(path, dtype="float32", always_2d=True)
    return sr, torch.from_numpy(data.T.copy())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.mask_start is None) != (args.mask_end is None):
        parser.error("give both --mask-start and --mask-end")
    try:
        extra = parse_cond(args.cond)
        paths = output_paths(args.output, args.batch_size, args.return_latents)
    except ValueError as exc:
        parser.error(str(exc))
    given = flags_given(parser, argv, tuple(FLAG_FAMILIES))

    # The command's implementation loads torch: imported after argument parsing so --help and flag
    # errors answer at once (entry points are the one place project imports wait inside a function).
    import numpy as np

    from stable_audio_ops.inference.entry import generate
    from stable_audio_ops.tracking.loading import load_model
    from stable_audio_ops.tracking.store import command_tracking_uri

    configure_logging()
    try:
        loaded = load_model(args.model, args.model_config, args.device, model_types=GENERATE_MODEL_TYPES,
                            purpose="used by this command",
                            tracking_uri=command_tracking_uri(args.tracking_uri), adapter=args.adapter)
        model, config = loaded.model, loaded.config
        check_flags_fit(loaded.model_type, given)
        if args.max_gen_len is not None:
            sample_size = args.max_gen_len * max(1, int(getattr(model, "min_input_length", 1)))
        else:
            sample_size = resolve_sample_size(model, config, args.sample_size, args.seconds)
        sample_rate = int(config["sample_rate"])
        seconds_total = args.seconds_total if args.seconds_total is not None else sample_size / sample_rate
        item = {"prompt": args.prompt, "seconds_start": args.seconds_start, "seconds_total": seconds_total, **extra}
        conditioning = [dict(item) for _ in range(args.batch_size)]
        negative = None
        if args.negative_prompt is not None:
            negative = [{**item, "prompt": args.negative_prompt} for _ in range(args.batch_size)]
        build_params = PARAM_BUILDERS[MODEL_FAMILIES.get(loaded.model_type, "diffusion")]
        params = build_params(args, loaded.device, sample_size, conditioning, negative)
        # generate() refuses inpainting parameters for a model that is not an inpainting model, by name
        output = generate(model, loaded.model_type, **params)
    except (StableAudioOpsError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    output = output.detach().float().cpu()
    for path, item_out in zip(paths, output, strict=True):
        if args.return_latents:
            atomic_write(path, lambda f, item=item_out: np.save(f, item.numpy()))
        else:
            peak = float(item_out.abs().max())
            write_audio(path, item_out / peak if peak > 1.0 else item_out, sample_rate,
                        subtype="PCM_16")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
