"""One moto S3 server (a real S3 endpoint on loopback) for every vault test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.moto_s3 import MotoS3Server


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoS3Server]:
    server = MotoS3Server()
    server.start()
    try:
        yield server
    finally:
        server.close()
