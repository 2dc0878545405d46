"""DVC remotes: push to an S3-compatible server (moto's standalone server on 127.0.0.1, started and
stopped here) and pull into a fresh git clone, configured exactly as the README documents it; and the
repo's local default remote (``.dvc/remote``) round-trips the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.data.s3_server import AWS_TEST_ENV, AWS_UNSET, MotoServer

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DVC = str(BIN / "dvc")


EMPTY_AWS_FILE = Path(os.environ.get("TMPDIR", "/tmp")) / "sao-empty-aws-config"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in AWS_UNSET}
    env.update(AWS_TEST_ENV)
    # aiobotocore (DVC's S3 client) refuses /dev/null as a config file: give it an empty one
    EMPTY_AWS_FILE.touch()
    env.update(AWS_CONFIG_FILE=str(EMPTY_AWS_FILE), AWS_SHARED_CREDENTIALS_FILE=str(EMPTY_AWS_FILE))
    env.update(DVC_NO_ANALYTICS="1", DO_NOT_TRACK="true", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com", PATH=f"{BIN}:{os.environ['PATH']}")
    return env


def run(cwd: Path, *cmd: str) -> str:
    result = subprocess.run(list(cmd), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=180)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def make_repo(root: Path) -> Path:
    """A git + DVC repo using the project's .dvc/config and .dvcignore, with a small tracked audio folder."""
    root.mkdir()
    run(root, "git", "init", "-q", "-b", "main")
    (root / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy(REPO / ".dvc" / name, root / ".dvc" / name)
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    audio = root / "data" / "01_raw" / "clips"
    audio.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(audio / f"clip{i}.wav", (0.1 * rng.standard_normal(1600)).astype(np.float32), 16000)
    run(root, DVC, "add", "-q", "data/01_raw/clips")
    return root


def _digests(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_s3_remote_push_then_pull_into_a_fresh_clone(tmp_path):
    import boto3

    with MotoServer() as server:
        s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="dvc-store")
        origin = make_repo(tmp_path / "origin")
        # as documented in the README: the remote and its endpoint are committed, credentials stay local
        run(origin, DVC, "remote", "add", "s3", "s3://dvc-store/stable-audio-ops")
        run(origin, DVC, "remote", "modify", "s3", "endpointurl", server.endpoint)
        run(origin, DVC, "remote", "modify", "--local", "s3", "access_key_id", "testing")
        run(origin, DVC, "remote", "modify", "--local", "s3", "secret_access_key", "testing")
        run(origin, "git", "add", "-A")
        run(origin, "git", "commit", "-q", "-m", "data + s3 remote")
        pushed = run(origin, DVC, "push", "-r", "s3")
        assert "3 files pushed" in pushed or "4 files pushed" in pushed, pushed
        keys = s3.list_objects_v2(Bucket="dvc-store", Prefix="stable-audio-ops/")
        assert keys["KeyCount"] >= 4  # 3 clips + the .dir manifest

        clone = tmp_path / "clone"
        run(tmp_path, "git", "clone", "-q", str(origin), str(clone))
        assert not (clone / "data" / "01_raw" / "clips").exists()
        # credentials come from the environment in the clone (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
        run(clone, DVC, "pull", "-r", "s3")
        assert _digests(clone / "data" / "01_raw" / "clips") == _digests(origin / "data" / "01_raw" / "clips")
        status = run(clone, DVC, "status", "-c", "-r", "s3")
        assert "new:" not in status and "missing:" not in status, status


def test_local_default_remote_round_trips_the_cache(tmp_path):
    repo = make_repo(tmp_path / "repo")
    assert "local" in run(repo, DVC, "remote", "default")
    run(repo, DVC, "push")
    assert (repo / ".dvc" / "remote" / "files" / "md5").is_dir()
    before = _digests(repo / "data" / "01_raw" / "clips")
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / "data" / "01_raw" / "clips")
    run(repo, DVC, "pull")
    assert _digests(repo / "data" / "01_raw" / "clips") == before
    ignored = subprocess.run(["git", "check-ignore", "-q", ".dvc/remote"], cwd=repo).returncode
    assert ignored == 0, "the local remote must stay out of git"
