"""Parity with stable-audio-tools 0.0.20 for the conditioned DiT (``diffusion_cond`` / ``diffusion_cond_inpaint``).

- ``dit_cond``, ``dit_cond_inpaint``: every recorded output (conditioner outputs, conditioning inputs,
  guided and unguided forward passes incl. APG).
- ``dit_adaln_variants``, ``dit_adaln_conformer``: the same for the DiT options adaLN, memory tokens,
  ``qk_norm: ln``, non-GLU feed-forward, layer_scale, prepend conditioning, ``timestep_cond_type:
  input_concat`` and the conformer module (with the rectified-flow objective's CFG).
- ``dit_latent_v``, ``dit_latent_rf``: the conditioning outputs, plus every backbone call of each
  generation run replayed from its recorded ``trace.x`` / ``trace.t`` (the generation outputs themselves
  are checked by the sampling tests). This covers grouped key/value heads and the RF objective's CFG.

Models come from model_config.json through our factory and load strictly; tolerances come from case.json.
"""

from __future__ import annotations

import functools

import pytest
import torch

from stable_audio_ops.models.diffusion import ConditionedDiffusionModelWrapper
from tests.parity.harness import load_case, load_model

FORWARD_CASES = ("dit_cond", "dit_cond_inpaint", "dit_adaln_variants", "dit_adaln_conformer")
LATENT_CASES = ("dit_latent_v", "dit_latent_rf")


@functools.cache
def _case(name: str):
    return load_case(name)


@functools.cache
def _model(name: str) -> ConditionedDiffusionModelWrapper:
    return load_model(_case(name))


@functools.cache
def _computed(name: str) -> dict[str, torch.Tensor]:
    """Conditioning and forward outputs, computed as case.json -> calls says (eval, no_grad)."""
    case, model = _case(name), _model(name)
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        cond = model.conditioner(case.params["metadata"], "cpu")
        for cond_id, (embedding, mask) in cond.items():
            out[f"cond.{cond_id}.embedding"] = embedding
            out[f"cond.{cond_id}.mask"] = mask.float()
        if "inpaint_mask" in case.inputs:
            cond["inpaint_mask"] = [case.inputs["inpaint_mask"]]
            cond["inpaint_masked_input"] = [case.inputs["inpaint_masked_input"]]
        for key, value in model.get_conditioning_inputs(cond).items():
            if value is not None:
                out[f"cond_inputs.{key}"] = value.float()
        for call, kwargs in case.params.get("forward_calls", {}).items():
            out[f"forward.{call}"] = model(case.inputs["x"], case.inputs["t"], cond, **kwargs)
    return out


def _outputs(names: tuple[str, ...], prefixes: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(n, o) for n in names for o in _case(n).outputs if o.startswith(prefixes)]


@pytest.mark.parametrize("name", FORWARD_CASES + LATENT_CASES)
def test_checkpoint_loads_strictly_and_ckpt_matches_safetensors(name: str) -> None:
    model = _model(name)
    case = _case(name)
    ckpt, safetensors = case.ckpt_state_dict(), case.state_dict()
    assert set(ckpt) == set(safetensors)
    for key, value in safetensors.items():
        assert torch.equal(ckpt[key], value), key
    own = model.state_dict()
    assert set(own) == set(safetensors)  # strict both ways: nothing extra, nothing missing


@pytest.mark.parametrize(("name", "output"), _outputs(FORWARD_CASES, ("cond.", "cond_inputs.", "forward.")))
def test_forward_case_output(name: str, output: str) -> None:
    computed = _computed(name)
    assert output in computed, f"{output} was not produced (have: {sorted(computed)})"
    _case(name).assert_close(output, computed[output])


@pytest.mark.parametrize(("name", "output"), _outputs(LATENT_CASES, ("cond.", "cond_inputs.")))
def test_latent_case_conditioning(name: str, output: str) -> None:
    computed = _computed(name)
    assert output in computed, f"{output} was not produced (have: {sorted(computed)})"
    _case(name).assert_close(output, computed[output])


def _runs() -> list[tuple[str, str]]:
    return [(n, run) for n in LATENT_CASES for run in _case(n).params["runs"]]


@pytest.mark.parametrize(("name", "run"), _runs())
def test_backbone_calls_replay_generation_trace(name: str, run: str) -> None:
    """Each recorded backbone call (x, t) -> model_out is reproduced by our DiTWrapper with the run's
    guidance settings (generate_diffusion_cond passes apg_scale, default 1.0, and rescale_cfg=True)."""
    case, model = _case(name), _model(name)
    spec = case.params["runs"][run]
    xs, ts = case.outputs[f"{run}.trace.x"], case.outputs[f"{run}.trace.t"]
    with torch.no_grad():
        cond_inputs = model.get_conditioning_inputs(model.conditioner(case.params["metadata"], "cpu"))
        outs = [model.model(xs[i], ts[i], **cond_inputs, cfg_scale=spec["cfg_scale"],
                            apg_scale=spec["kwargs"].get("apg_scale", 1.0), batch_cfg=True, rescale_cfg=True)
                for i in range(xs.shape[0])]
    case.assert_close(f"{run}.trace.model_out", torch.stack(outs))


def test_apg_and_vanilla_cfg_differ_and_cfg1_is_unguided() -> None:
    """Guards the guidance switches themselves: APG must not silently fall back to vanilla CFG, and
    cfg_scale 1 must be a single unguided pass."""
    case, model = _case("dit_cond"), _model("dit_cond")
    computed = _computed("dit_cond")
    assert (computed["forward.cfg6"] - computed["forward.cfg6_vanilla"]).abs().max() > 1e-3
    with torch.no_grad():
        inputs = model.get_conditioning_inputs(model.conditioner(case.params["metadata"], "cpu"))
        direct = model.model.model.denoise(case.inputs["x"], case.inputs["t"], inputs["cross_attn_cond"],
                                           None, inputs["global_cond"], None)
    torch.testing.assert_close(direct, computed["forward.cfg1"], rtol=0, atol=0)
