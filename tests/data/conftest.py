"""Fixtures shared by the S3 tests of tests/data: test credentials and a real moto server.

Module-scoped on purpose: each test module gets its own server (so buckets made by one module
never leak into another) while the tests inside a module share it, keeping start-up cost low.
"""

from __future__ import annotations

import pytest

from tests.data.s3_server import AWS_TEST_ENV, AWS_UNSET, MotoServer


@pytest.fixture(scope="module")
def aws_env():
    """Dummy credentials and no profile/endpoint from the developer's environment, for one module."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in AWS_TEST_ENV.items():
            mp.setenv(name, value)
        for name in AWS_UNSET:
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def moto(aws_env):
    """A running moto S3 server (``.endpoint``, ``.port``) for one test module."""
    with MotoServer() as server:
        yield server
