"""S3 access against a real S3-compatible server (moto_server on 127.0.0.1), with injected faults."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from stable_audio_ops.data import s3
from stable_audio_ops.errors import DatasetError
from tests.data.s3_server import FaultProxy, MotoServer, free_port

FAST = s3.RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2)


@pytest.fixture(scope="module")
def bucket(moto):
    settings = s3.S3Settings(endpoint_url=moto.endpoint, retry=FAST)
    client = s3.make_s3_client(settings)
    client.create_bucket(Bucket="shards")
    for key in ["data/a.tar", "data/sub/b.tar", "data/sub/deeper/c.tar", "data/readme.txt", "database/x.tar",
                "other/d.tar", "notes/readme.txt"]:
        client.put_object(Bucket="shards", Key=key, Body=b"x" * 10)
    client.put_object(Bucket="shards", Key="big/blob.tar", Body=os.urandom(3_000_000))
    return settings


def test_list_shards_is_recursive_and_respects_folder_prefix(bucket):
    expected = ["s3://shards/data/a.tar", "s3://shards/data/sub/b.tar", "s3://shards/data/sub/deeper/c.tar"]
    assert s3.list_shards("s3://shards/data", bucket) == expected
    assert s3.list_shards("s3://shards/data/", bucket) == expected
    assert s3.list_shards("s3://shards/data/sub", bucket) == expected[1:]
    assert s3.list_shards("s3://shards/data/a.tar", bucket) == expected[:1]
    everything = s3.list_shards("s3://shards", bucket, page_size=2)  # 4 pages: pagination is followed
    assert everything == sorted(expected + ["s3://shards/big/blob.tar", "s3://shards/database/x.tar",
                                            "s3://shards/other/d.tar"])


def test_missing_bucket_error_names_bucket_and_endpoint(bucket, moto):
    with pytest.raises(s3.S3NotFoundError) as info:
        s3.list_shards("s3://no-such-bucket/train", bucket)
    message = str(info.value)
    assert "no-such-bucket" in message and moto.endpoint in message
    assert isinstance(info.value, DatasetError)


def test_prefix_without_shards_error_names_prefix_and_what_is_there(bucket, moto):
    with pytest.raises(s3.S3NotFoundError) as info:
        s3.list_shards("s3://shards/notes", bucket)
    message = str(info.value)
    assert "s3://shards/notes/" in message and moto.endpoint in message and "notes/readme.txt" in message
    with pytest.raises(s3.S3NotFoundError, match="prefix is empty"):
        s3.list_shards("s3://shards/nothing-here", bucket)


def test_stream_returns_the_object_bytes(bucket):
    client = s3.make_s3_client(bucket)
    expected = client.get_object(Bucket="shards", Key="big/blob.tar")["Body"].read()
    with s3.open_s3_stream("s3://shards/big/blob.tar", bucket) as f:
        assert f.read() == expected


def test_endpoint_from_env_and_profile(moto, bucket, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    assert "s3://shards/data/a.tar" in s3.list_shards("s3://shards/data", s3.S3Settings(retry=FAST))
    monkeypatch.delenv("AWS_ENDPOINT_URL")

    config = tmp_path / "config"
    config.write_text(f"[profile local]\nregion = us-east-1\nendpoint_url = {moto.endpoint}\n")
    creds = tmp_path / "credentials"
    creds.write_text("[local]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert len(s3.list_shards("s3://shards/data", s3.S3Settings(profile="local", retry=FAST))) == 3
    with pytest.raises(s3.S3PermissionError, match="'missing'"):
        s3.list_shards("s3://shards/data", s3.S3Settings(profile="missing", retry=FAST))


def test_no_credentials_is_a_clear_error(moto, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(s3.S3PermissionError, match="no AWS credentials"):
        s3.list_shards("s3://shards/data", s3.S3Settings(endpoint_url=moto.endpoint, retry=FAST))


def test_retries_until_the_server_comes_up(aws_env, caplog):
    server = MotoServer(free_port())
    timer = threading.Timer(0.8, server.start, kwargs={"wait": False})
    timer.start()
    try:
        settings = s3.S3Settings(endpoint_url=server.endpoint, retry=s3.RetryPolicy(12, 0.2, 0.5))
        client = s3.make_s3_client(settings)
        with caplog.at_level(logging.WARNING, logger="stable_audio_ops.data.s3"):
            s3.call_with_retries(lambda: client.create_bucket(Bucket="late"), "creating bucket", settings)
        assert any("retrying" in r.getMessage() for r in caplog.records)
        assert s3.call_with_retries(lambda: client.list_buckets(), "listing", settings)["Buckets"][0]["Name"] == "late"
    finally:
        timer.join()
        server.stop()


def test_throttling_and_5xx_are_retried_then_reported(bucket, moto):
    with FaultProxy(moto.port) as proxy:
        settings = s3.S3Settings(endpoint_url=proxy.endpoint, retry=FAST)
        proxy.fail_next(3, status=503)
        assert len(s3.list_shards("s3://shards/data", settings)) == 3
        assert proxy.requests == 4
        proxy.fail_next(100, status=500)
        started = time.monotonic()
        with pytest.raises(s3.S3UnavailableError) as info:
            s3.list_shards("s3://shards/data", settings)
        assert time.monotonic() - started < 5
        message = str(info.value)
        assert proxy.endpoint in message and "4 attempts" in message and "s3://shards/data/" in message


def test_stream_resumes_after_dropped_connections(bucket, moto):
    expected = s3.make_s3_client(bucket).get_object(Bucket="shards", Key="big/blob.tar")["Body"].read()
    with FaultProxy(moto.port) as proxy:
        settings = s3.S3Settings(endpoint_url=proxy.endpoint, retry=FAST)
        proxy.cut_next_gets(2, after=200_000)
        with s3.open_s3_stream("s3://shards/big/blob.tar", settings) as f:
            assert f.read() == expected
            assert f.raw.resumes == 2


def test_server_down_mid_stream_gives_clear_error(aws_env):
    with MotoServer() as server:
        client = s3.make_s3_client(s3.S3Settings(endpoint_url=server.endpoint))
        client.create_bucket(Bucket="going")
        client.put_object(Bucket="going", Key="x.tar", Body=os.urandom(2_000_000))
        with FaultProxy(server.port) as proxy:
            settings = s3.S3Settings(endpoint_url=proxy.endpoint, retry=FAST)
            proxy.cut_next_gets(1, after=100_000)
            stream = s3.open_s3_stream("s3://going/x.tar", settings)
            server.stop()
            with pytest.raises(s3.S3UnavailableError) as info:
                stream.read()
            message = str(info.value)
            assert "s3://going/x.tar" in message and proxy.endpoint in message and "resuming" in message
