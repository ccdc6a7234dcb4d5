"""The S3 store's private minio and urllib3 calls, fenced in one module.

:class:`vault.s3.S3BlobStore` moves bytes through minio's public
``put_object``/``get_object`` when built with ``direct=False`` (``[tuning]
s3_direct = false``). With ``direct=True``, the default, it calls these
instead, each sparing copies of the object the public calls make:

- :func:`put_bytes`: the PutObject request that ``put_object`` sends for a
  single part (``Minio._put_object``), given the bytes themselves. The public
  call wants a file-like object and reads the object into a fresh copy first.
- :func:`upload_parts`: a multipart upload driven from the event loop, one
  part at a time (``Minio._create_multipart_upload``, ``_upload_part``,
  ``_complete_multipart_upload``, ``_abort_multipart_upload``). The public call
  reads its parts from a file-like object on a worker thread, which then blocks
  on the loop for each piece of the source, and copies each part three times
  (a join, a one-byte look-ahead concatenation, a slice).
- :func:`socket_readinto`: http.client's ``readinto`` under urllib3's
  response (``HTTPResponse._fp``), which fills the store's reused block straight
  from the socket; urllib3's own ``readinto`` reads into a fresh bytes object
  and copies it.

What that buys, measured by ``tests/bench/vault_bench.py`` against its
``--stock-s3`` run: docs/benchmarks.md, "Fenced internals" (a 10 MB get about
1.5 times faster). Tested with minio 7.2.20 and urllib3 2.8.0; pyproject.toml
bounds minio to 7.2.x and urllib3 below 3. Both paths pass the same blob-store
tests (tests/vault/test_s3.py and test_whole_reads.py run them on both);
gateway/base/tuning lists this fence beside the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
from collections.abc import Awaitable, Callable
from typing import Any, cast

from minio import Minio
from minio.datatypes import Part

__all__ = ["put_bytes", "socket_readinto", "upload_parts"]

Call = Callable[..., Awaitable[Any]]  # the store's own: runs a blocking call on its pool
Gather = Callable[[int], Awaitable[tuple[bytes | bytearray, bool]]]
_HEADERS = {"Content-Type": "application/octet-stream"}


def put_bytes(client: Minio, bucket: str, key: str, data: bytes | bytearray) -> str | None:
    """PutObject of ``data`` as it is (a blocking call); the new version's id."""
    # Annotated bytes, minio takes any buffer: hashlib and urllib3 do.
    result = client._put_object(bucket, key, cast(bytes, data), dict(_HEADERS))
    return result.version_id


async def upload_parts(
    call: Call,
    client: Minio,
    bucket: str,
    key: str,
    first: list[bytes | bytearray],
    gather: Gather,
    part_size: int,
) -> tuple[int, str | None]:
    """CreateMultipartUpload, an UploadPart per gathered part, Complete; Abort on failure.

    ``first`` holds the part the caller already gathered (taken out of the list,
    so that it is freed once sent); ``gather(n)`` returns the next ``n`` bytes and
    whether the source ended. One part is held at a time: about two parts of
    memory whatever the object size. Returns the byte count and the version id.
    """
    upload_id: str = await call(client._create_multipart_upload, bucket, key, dict(_HEADERS))
    parts: list[Part] = []
    total = 0
    try:
        data = first.pop()
        while data:
            number = len(parts) + 1
            etag = await call(client._upload_part, bucket, key, data, None, upload_id, number)
            parts.append(Part(number, etag))
            total += len(data)
            data = b""  # let the part go before the next one is gathered
            data, _ = await gather(part_size)
        result = await call(client._complete_multipart_upload, bucket, key, upload_id, parts)
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(call(client._abort_multipart_upload, bucket, key, upload_id))
        raise
    return total, cast(str | None, result.version_id)


def socket_readinto(response: Any) -> Callable[[memoryview], int | None] | None:
    """The socket-level ``readinto`` under a urllib3 response, or None if it has none."""
    raw = getattr(response, "_fp", None)
    return raw.readinto if isinstance(raw, http.client.HTTPResponse) else None
