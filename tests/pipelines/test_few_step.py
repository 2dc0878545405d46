"""The few_step pipeline by Kedro's SequentialRunner: a tiny rectified-flow DiT (registered as the latent-diffusion
model) is the teacher; ARC post-trains it for a few steps on pre-encoded demo notes; the unwrapped student is a
plain rf_denoiser model that generates with pingpong; teacher (its own sampler, CFG 6) and student (8 pingpong steps,
CFG 1) are judged side by side on the same test captions, timed, and held to the goal; the student's registry
version names the teacher's version, carries its scores and the verdict, and is promoted only when the goal holds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from pipelines.datasets import TrainingRunDataset, UnwrappedModelDataset
from pipelines.few_step.pipeline import create_pipeline
from stable_audio_ops.config.dataset_config import validate_dataset_config
from stable_audio_ops.data.pre_encoded import pre_encoded_dataset_config
from stable_audio_ops.inference.generation import generate_diffusion_cond
from stable_audio_ops.inference.pre_encode import pre_encode_training_set
from stable_audio_ops.models.checkpoints import load_ckpt_state_dict, save_model_checkpoint
from stable_audio_ops.models.factory import create_model_from_config
from stable_audio_ops.tracking.few_step import few_step_goal, promote_few_step_student
from stable_audio_ops.tracking.loading import load_model
from stable_audio_ops.tracking.registration import register_latent_diffusion
from tests.pipelines.conftest import REPO, run_pipeline
from tests.pipelines.test_evaluation import PARAMS as EVALUATION_PARAMS
from tests.pipelines.test_fine_tune import prepared_data
from tests.tracking.tiny_models import TINY_DIT, use_sqlite_store, write_tiny_models


def rf_teacher(root: Path) -> Path:
    """The tiny DiT as a rectified-flow model carrying the tiny autoencoder (what latent_diffusion writes)."""
    ae_path, dit_path = write_tiny_models(root / "tiny")
    config = json.loads(TINY_DIT.read_text())
    config["model"]["diffusion"]["diffusion_objective"] = "rectified_flow"
    model = create_model_from_config(config)
    model.load_state_dict(load_ckpt_state_dict(dit_path))
    return Path(save_model_checkpoint(model.state_dict(), root / "latent_diffusion.safetensors", config)), ae_path


def few_step_params() -> dict:
    params = yaml.safe_load((REPO / "conf/base/parameters_few_step.yml").read_text())["few_step"]
    params["discriminator"] = {"dit_hidden_layer": 1, "config": {"channels": 16, "c_mults": [1], "strides": [2],
                                                                "num_blocks": [1]}, "contrastive": True}
    params["train"].update(max_steps=4, batch_size=2, checkpoint_every=2, threads=1)
    params["registry"]["name"] = "t-few-step"
    # the test's judges run the ACF pitch tracker only; a speed-up no model reaches makes the verdict certain
    params["goal"]["margins"]["pitch_acc_acf"] = params["goal"]["margins"].pop("pitch_acc_crepe")
    params["goal"]["min_speedup"] = 1.0e6
    return params


# the teacher samples with CFG 6 as the evaluation does, but 20 steps instead of 50 and two test captions (one per
# instrument) judged by the fast judges: the tiny DiT's 1.5 s notes are long latent sequences
TEACHER_EVALUATION = {**EVALUATION_PARAMS,
                      "generation": {**EVALUATION_PARAMS["generation"], "num_captions": 2, "steps": 20, "cfg_scale": 6.0}}


def test_few_step_pipeline_post_trains_the_teacher_into_a_registered_pingpong_student(tmp_path, monkeypatch) -> None:
    use_sqlite_store(tmp_path, monkeypatch)
    teacher_path, ae_path = rf_teacher(tmp_path)
    teacher_version = register_latent_diffusion(teacher_path, "t-ld", autoencoder_name="t-ae",
                                                autoencoder_registration={})["version"]
    train_config, test_config = prepared_data(tmp_path)
    pre_encode_training_set(ae_path, validate_dataset_config(train_config, "train"), tmp_path / "latents",
                            sample_size=1024, batch_size=4, num_workers=0, random_crop=False, latent_mode="mean",
                            seed=0, progress=False)
    out_dir = tmp_path / "out"
    params = few_step_params()
    out = run_pipeline(create_pipeline(), {
        "params:few_step": params, "params:evaluation": TEACHER_EVALUATION, "test_dataset_config": test_config,
        "latent_diffusion_model": {"path": str(teacher_path)},
        "latent_dataset_config": pre_encoded_dataset_config(tmp_path / "latents", "notes_latents")},
        datasets={"few_step_training_result": TrainingRunDataset(str(out_dir / "training.json"),
                                                                 run_dir=str(out_dir / "run")),
                  "few_step_model": UnwrappedModelDataset(str(out_dir / "model.json"),
                                                          str(out_dir / "few_step.safetensors"))})

    config = out["few_step_model_config"]
    assert config["model"]["diffusion"]["diffusion_objective"] == "rf_denoiser"
    assert config["training"]["arc"]["discriminator_base_ckpt"] == str(teacher_path)

    student = load_model(out["few_step_model"]["path"])
    assert student.config["model"]["diffusion"]["diffusion_objective"] == "rf_denoiser"
    teacher_state = load_ckpt_state_dict(teacher_path)
    assert set(student.model.state_dict()) == set(teacher_state)  # a plain model: no discriminator, no teacher
    assert any(not torch.equal(v, teacher_state[k]) for k, v in student.model.state_dict().items())
    audio = generate_diffusion_cond(student.model, steps=4, cfg_scale=1.0, sample_size=1024, seed=0,
                                    conditioning=[{"prompt": "flute", "seconds_total": 0.06}], progress=False)
    assert torch.isfinite(audio).all()

    registration = out["few_step_registration"]
    assert registration["teacher_model"] == "t-ld" and registration["teacher_version"] == str(teacher_version)
    assert registration["sampling.sampler_type"] == "pingpong" and registration["sampling.steps"] == "8"
    registered = load_model(f"models:/t-few-step/{registration['version']}")
    assert registered.config["model"]["diffusion"]["diffusion_objective"] == "rf_denoiser"

    # judged side by side on the same captions: both rows finite, the student faster
    evaluation = out["few_step_evaluation"]
    rows, speedup = evaluation["rows"], evaluation["speedup"]
    assert set(rows) == {"teacher", "student", "real", "noise"} and evaluation["captions"] == 2
    for role in ("teacher", "student"):
        assert all(math.isfinite(rows[role][key]) for key in ("pitch_acc_acf", "inst_acc", "kid", "seconds_per_note"))
    assert (rows["teacher"]["steps"], rows["teacher"]["cfg_scale"]) == (20, 6.0)
    assert (rows["student"]["steps"], rows["student"]["cfg_scale"]) == (8, 1.0)
    assert evaluation["samplers"] == {"teacher": "euler", "student": "pingpong"}  # each its own sampler
    assert speedup == rows["teacher"]["seconds_per_note"] / rows["student"]["seconds_per_note"] and speedup > 1
    metrics = out["few_step_evaluation_metrics"]
    assert metrics["speedup"]["value"] == speedup and metrics["goal_met"]["value"] == 0.0
    assert metrics["student.kid"]["value"] == rows["student"]["kid"]
    report = out["few_step_report"]
    assert "| teacher | 2 |" in report and "| student | 2 |" in report and "Goal: NOT MET" in report

    # the missed goal is recorded on the version and keeps it from champion, saying why
    goal = evaluation["goal"]
    assert not goal["met"] and goal["failures"][-1].startswith("speedup") and "< floor 1000000" in goal["failures"][-1]
    assert registration["goal.met"] == "false" and float(registration["eval.speedup"]) == pytest.approx(speedup, rel=1e-5)
    assert float(registration["eval.kid"]) == pytest.approx(rows["student"]["kid"], rel=1e-5)
    promotion = out["few_step_promotion"]
    assert not promotion["promoted"] and promotion["champion"] is None
    assert promotion["reason"].startswith("not promoted: goal against the teacher: speedup")
    # the same numbers against a goal they meet: the student becomes the first champion
    lenient = {"margins": {m: {"mode": "max", "within": 1.0} for m in ("pitch_acc_acf", "inst_acc")}, "min_speedup": 1.0}
    verdict = few_step_goal(rows["teacher"], rows["student"], speedup, lenient)
    assert verdict["met"]
    decision = promote_few_step_student(registration, {**rows["student"], "speedup": speedup}, verdict,
                                        rule=params["promotion"], floors=None)
    assert decision["promoted"] and decision["champion"] == registration["version"]
