"""arc_student_config: the teacher's architecture as an rf_denoiser student whose ARC section loads the teacher."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from stable_audio_ops.errors import ConfigError
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.training.arc_recipe import arc_student_config

TEACHER = json.loads((Path(__file__).parents[1] / "fixtures" / "configs" / "dit_tiny.json").read_text())
OPT = {"type": "AdamW", "config": {"lr": 1e-5}}
DISC = {"dit_hidden_layer": 1}


def test_student_keeps_the_architecture_and_reads_the_teacher_for_discriminator_and_warmup() -> None:
    teacher = copy.deepcopy(TEACHER)
    teacher["model"]["diffusion"]["diffusion_objective"] = "rectified_flow"
    config = arc_student_config(teacher, "/m/dit.safetensors", optimizer=OPT, discriminator_optimizer=OPT,
                                discriminator=DISC, ode_warmup={"warmup_steps": 10})
    assert config["model"]["diffusion"]["diffusion_objective"] == "rf_denoiser"
    assert teacher["model"]["diffusion"]["diffusion_objective"] == "rectified_flow"  # the input is not edited
    assert {k: v for k, v in config["model"].items() if k != "diffusion"} == \
        {k: v for k, v in teacher["model"].items() if k != "diffusion"}
    arc = config["training"]["arc"]
    assert arc["discriminator_base_ckpt"] == arc["teacher_model_ckpt"] == "/m/dit.safetensors"
    assert arc["use_model_as_discriminator"] and arc["use_model_as_teacher"]
    assert "demo" not in config["training"] and config["training"]["pre_encoded"]
    assert create_model_from_config(config).diffusion_objective == "rf_denoiser"
    without_warmup = arc_student_config(teacher, "/m/dit.safetensors", optimizer=OPT, discriminator_optimizer=OPT,
                                        discriminator=DISC)["training"]["arc"]
    assert "teacher_model_ckpt" not in without_warmup and "ode_warmup" not in without_warmup


def test_a_v_objective_teacher_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"teacher\.json: model\.diffusion\.diffusion_objective: .*rectified-flow"):
        arc_student_config(TEACHER, "x", optimizer=OPT, discriminator_optimizer=OPT, discriminator=DISC,
                           source="teacher.json")
