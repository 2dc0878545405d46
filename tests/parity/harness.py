"""Reads a parity case from tests/fixtures/parity and compares outputs with its stated tolerance.

Each case folder holds what stable-audio-tools 0.0.20 produced (see tests/fixtures/parity/README.md).
Tolerances always come from the case's ``case.json`` (``tolerance`` + fnmatch ``overrides``);
tests never pass their own.
"""

from __future__ import annotations

import fnmatch
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from stable_audio_ops.models.checkpoints import load_state_dict_checked
from stable_audio_ops.models.factory import create_model_from_config_path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"


@dataclass
class ParityCase:
    name: str
    root: Path
    case: dict
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def params(self) -> dict:
        return self.case.get("params", {})

    @property
    def model_config(self) -> dict:
        return json.loads((self.root / "model_config.json").read_text())

    @property
    def model_config_path(self) -> Path:
        return self.root / "model_config.json"

    def tolerance(self, output_name: str) -> tuple[float, float]:
        tol = self.case["tolerance"]
        atol, rtol = float(tol["atol"]), float(tol["rtol"])
        for pattern, override in (tol.get("overrides") or {}).items():
            if fnmatch.fnmatch(output_name, pattern):
                atol = float(override.get("atol", atol))
                rtol = float(override.get("rtol", rtol))
        return atol, rtol

    def assert_close(self, output_name: str, actual: torch.Tensor) -> None:
        expected = self.outputs[output_name]
        actual = actual.detach().to(torch.float32).cpu()
        assert tuple(actual.shape) == tuple(expected.shape), (
            f"{self.name}/{output_name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
        )
        atol, rtol = self.tolerance(output_name)
        if not torch.allclose(actual, expected, atol=atol, rtol=rtol):
            diff = (actual - expected).abs()
            worst = diff.max().item()
            where = torch.nonzero(diff == diff.max())[0].tolist()
            raise AssertionError(
                f"{self.name}/{output_name}: max |diff| {worst:.3e} at {where} "
                f"(atol {atol:g}, rtol {rtol:g}); first bad index of {diff.numel()} values"
            )

    def state_dict(self) -> dict[str, torch.Tensor]:
        return load_file(str(self.root / "model.safetensors"))

    def ckpt_state_dict(self) -> dict[str, torch.Tensor]:
        return torch.load(self.root / "model.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def load_case(name: str) -> ParityCase:
    root = FIXTURES / name
    case = json.loads((root / "case.json").read_text())
    inputs = load_file(str(root / "inputs.safetensors")) if (root / "inputs.safetensors").exists() else {}
    outputs = load_file(str(root / "outputs.safetensors")) if (root / "outputs.safetensors").exists() else {}
    return ParityCase(name=name, root=root, case=case, inputs=inputs, outputs=outputs)


def load_model(case: ParityCase) -> torch.nn.Module:
    """The case's model, built from its model_config.json by our factory (any model_type), with the
    case's weights loaded strictly: every key must exist with the right shape and every weight is used,
    so parity failures are never a silently half-loaded model. Returned in eval mode."""
    model = create_model_from_config_path(case.model_config_path)
    state = case.state_dict()
    report = load_state_dict_checked(model, state, strict=True, what=case.name)
    assert report.ok and report.loaded == len(state), f"{case.name}: {report}"
    return model.eval()


@functools.cache
def cached_case(name: str) -> ParityCase:
    """:func:`load_case`, read once per test session (cases are read-only)."""
    return load_case(name)


@functools.cache
def cached_model(name: str) -> torch.nn.Module:
    """:func:`load_model` of a case, built once per test session; tests must not modify it."""
    return load_model(cached_case(name))


def outputs_of(cases: tuple[str, ...]) -> list[tuple[str, str]]:
    """(case, output name) of every recorded output of ``cases``: one parametrised test each."""
    return [(name, output) for name in cases for output in sorted(cached_case(name).outputs)]


def all_case_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "case.json").exists())
