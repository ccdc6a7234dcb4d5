"""S3 blob store (minio client): the vault's encrypted objects in a bucket.

The minio client blocks, so every call runs on a dedicated thread pool and the
event loop never waits on the network. Uploads stream: the loop gathers one
part (a small message then costs one thread trip and one PUT); a larger object
goes up as a multipart upload driven from the loop, one part at a time, so
memory stays near two parts whatever the object size. S3 makes an object
visible only when its PUT or multipart completion succeeds, and a failed or
cancelled upload is aborted, so a put is all or nothing. Reads: a whole
object (:meth:`S3BlobStore.read_blocks`) in one thread trip, from the socket
straight into one reused block; a stream one megabyte ahead of its reader.
A connection whose response was read to the end goes back to the pool open;
one abandoned half-way is closed. Short urllib3
timeouts and few retries turn a dead endpoint into :class:`VaultUnavailable`
within seconds, which SMTP answers with 451.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import functools
import http.client
import itertools
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar, cast

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.datatypes import Part
from minio.error import MinioException, S3Error
from minio.retention import Retention
from urllib3.util import Retry, Timeout

from vault.base import ObjectNotFound, RetentionLocked, VaultError, VaultUnavailable, pump

__all__ = ["RetentionLocked", "S3BlobStore"]  # RetentionLocked: re-exported from vault.base

T = TypeVar("T")
_NAME_RE = re.compile(r"^[0-9a-f]{32}(\.[a-z0-9]{1,16})?$")
_MIN_PART = 5 * 1024 * 1024  # S3's smallest multipart part
_SINGLE_PUT_MAX = 64 * 1024 * 1024  # objects the caller holds whole go up in one PUT
_READ_SIZE = 1024 * 1024  # per thread trip: fewer hops, still a bounded buffer


async def _gather(chunks: AsyncIterator[bytes | bytearray],
                  want: int) -> tuple[bytes | bytearray, bool]:
    """At least ``want`` bytes from the source, or all that is left; and whether it ended.

    A single piece comes back as it is: a sealed message is not copied again.
    """
    got: list[bytes | bytearray] = []
    have = 0
    while have < want:
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            return _joined(got), True
        got.append(chunk)
        have += len(chunk)
    return _joined(got), False


def _joined(pieces: list[bytes | bytearray]) -> bytes | bytearray:
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _read(stream: Iterator[bytes]) -> bytes | None:
    return next(stream, None)


def _finish(response: Any, last_read: asyncio.Future[bytes | None]) -> None:
    ended = (not last_read.cancelled() and last_read.exception() is None
             and last_read.result() is None)  # also retrieves an exception nobody awaited
    _release(response, ended)


def _release(response: Any, ended: bool) -> None:
    """Hand the connection back: kept alive after a whole body, dropped mid-body.

    minio's examples close every response, which also closes its socket; a
    fully read response leaves the connection clean, and reusing it spares
    the next request a TCP handshake and the server a new connection.
    """
    if not ended:
        response.close()
    response.release_conn()


def _lock_of(headers: Mapping[str, str]) -> str | None:
    """What an object's HEAD says protects it now: a legal hold or a future retention date."""
    if headers.get("x-amz-object-lock-legal-hold", "").upper() == "ON":
        return "under legal hold"
    mode = headers.get("x-amz-object-lock-mode")
    until = headers.get("x-amz-object-lock-retain-until-date", "")
    try:
        date = dt.datetime.fromisoformat(until)
    except ValueError:
        return f"under {mode} retention" if mode else None
    if date.tzinfo is None:
        date = date.replace(tzinfo=dt.UTC)
    active = mode and date > dt.datetime.now(dt.UTC)
    return f"under {mode} retention until {until}" if active else None


class S3BlobStore:
    """Opaque objects under ``prefix + name`` in one bucket; see the module docstring.

    ``object_lock`` with ``retention_days`` gives every object a retention
    (GOVERNANCE or COMPLIANCE) so that S3 itself refuses to delete it earlier:
    a compromised gateway cannot destroy the archive. ``workers`` bounds the
    concurrent S3 calls; an upload larger than one part holds a worker until
    its source is exhausted, so size the pool above the expected large puts.
    """

    def __init__(
        self, endpoint: str, access_key: str, secret_key: str, bucket: str, *,
        secure: bool = True, region: str | None = None, prefix: str = "",
        object_lock: Literal["", "GOVERNANCE", "COMPLIANCE"] = "", retention_days: int = 0,
        part_size: int = _MIN_PART, workers: int = 8,
        connect_timeout: float = 5.0, read_timeout: float = 60.0,
    ) -> None:
        if part_size < _MIN_PART:
            raise ValueError("part_size must be at least 5 MiB (S3's smallest part)")
        if object_lock not in ("", GOVERNANCE, COMPLIANCE):
            raise ValueError(f"object_lock must be GOVERNANCE or COMPLIANCE, not {object_lock!r}")
        if bool(object_lock) != (retention_days > 0):
            raise ValueError("object_lock and a positive retention_days go together")
        self._bucket = bucket
        self._prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._lock = object_lock
        self._days = retention_days
        self._part = part_size
        self._region = region
        # minio's default client waits 5 minutes and retries 5 times: a stopped
        # server would hold an SMTP transaction for minutes instead of a quick 451.
        # A read timeout is not retried: a hung server then costs one timeout.
        self._http = urllib3.PoolManager(
            timeout=Timeout(connect=connect_timeout, read=read_timeout), maxsize=workers,
            cert_reqs="CERT_REQUIRED", ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=Retry(total=2, read=0, backoff_factor=0.2,
                          status_forcelist=[500, 502, 503, 504]),
        )
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key,
                             secure=secure, region=region, http_client=self._http)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pli-s3")

    def _key(self, name: str) -> str:
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid object name {name!r}")
        return self._prefix + name

    async def _call(self, name: str, fn: Callable[..., T], *args: object) -> T:
        """Run a blocking minio call on the pool, translating its failures to vault errors.

        The caller's context goes along (as with asyncio.to_thread), so log lines
        from the call keep the request's bound context.
        """
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except (VaultError, ValueError):
            raise
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise ObjectNotFound(name) from None
            raise VaultUnavailable(f"S3 refused the request: {exc.code}: {exc.message}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise VaultUnavailable(f"S3 unreachable: {exc}") from exc

    async def put(self, name: str, chunks: AsyncIterator[bytes | bytearray],
                  retain_until: dt.datetime | None = None, size: int | None = None) -> int:
        key = self._key(name)
        # A caller that already holds the whole object (and says how big it is) gets
        # one PUT instead of a multipart upload, up to _SINGLE_PUT_MAX.
        limit = size if size is not None and self._part < size <= _SINGLE_PUT_MAX \
            else self._part
        # The first part is gathered here: a message that fits costs one thread trip
        # and one PUT, and a slow producer holds no worker thread meanwhile.
        data, ended = await _gather(chunks, limit + 1)
        if ended:
            await self._call(name, self._upload, key, data, retain_until)
            return len(data)
        return await self._multipart(name, key, chunks, [data], retain_until)

    async def _multipart(self, name: str, key: str, chunks: AsyncIterator[bytes | bytearray],
                         first: list[bytes | bytearray],
                         retain_until: dt.datetime | None) -> int:
        """CreateMultipartUpload, an UploadPart per gathered part, Complete; Abort on failure.

        minio's public put_object reads parts from a file-like object, which needs
        a thread blocked on the loop per upload and copies each part three times
        (join, a one-byte look-ahead concatenation, a slice); its multipart calls
        are used directly instead (minio 7.x, pinned below 8). One part is held
        at a time: about two parts of memory whatever the object size.
        """
        client = self._client
        upload_id: str = await self._call(name, client._create_multipart_upload, self._bucket,
                                          key, {"Content-Type": "application/octet-stream"})
        parts: list[Part] = []
        total = 0
        try:
            data = first.pop()  # the caller's list no longer holds the first part
            while data:
                number = len(parts) + 1
                etag = await self._call(name, client._upload_part, self._bucket, key, data,
                                        None, upload_id, number)
                parts.append(Part(number, etag))
                total += len(data)
                data = b""  # let the part go before the next one is gathered
                data, _ = await _gather(chunks, self._part)
            result = await self._call(name, client._complete_multipart_upload, self._bucket,
                                      key, upload_id, parts)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._call(name, client._abort_multipart_upload,
                                                self._bucket, key, upload_id))
            raise
        if self._lock:
            await self._call(name, self._lock_object, key, result.version_id, retain_until)
        return total

    def _upload(self, key: str, data: bytes | bytearray,
                retain_until: dt.datetime | None) -> None:
        # The PutObject call that minio's put_object makes for a single part, given
        # the bytes themselves: put_object wants a stream and would read them
        # into a fresh copy (for 10 MB, 2,560 page faults) before sending.
        # (Annotated bytes, it takes any buffer: hashlib and urllib3 do.)
        result = self._client._put_object(
            self._bucket, key, cast(bytes, data), {"Content-Type": "application/octet-stream"})
        if self._lock:
            self._lock_object(key, result.version_id, retain_until)

    def _lock_object(self, key: str, version_id: str | None,
                     retain_until: dt.datetime | None) -> None:
        # Retention is set by PutObjectRetention rather than put_object(retention=):
        # S3 demands a Content-MD5 with lock headers and minio sends none over
        # plain HTTP, while this call always carries one. put only returns once
        # the object is locked; an object that could not be locked is removed.
        # The bucket's retention_days is a floor; the vault's policy may ask for longer.
        until = dt.datetime.now(dt.UTC) + dt.timedelta(days=self._days)
        if retain_until is not None and retain_until > until:
            until = retain_until
        try:
            self._client.set_object_retention(
                self._bucket, key, Retention(self._lock, until), version_id=version_id)
        except BaseException:
            with contextlib.suppress(Exception):
                self._client.remove_object(self._bucket, key, version_id=version_id)
            raise

    async def get(self, name: str) -> AsyncIterator[bytes]:
        key = self._key(name)
        response, whole = await self._call(name, self._open, key)
        if response is None:  # small: read in the same thread trip as the request
            yield whole
            return
        stream = response.stream(_READ_SIZE)
        # One read ahead: the next megabyte comes off the network while the caller
        # decrypts this one (a 10 MB read went from read-then-decrypt to overlapped).
        ahead = asyncio.ensure_future(self._call(name, _read, stream))
        try:
            while (chunk := await ahead) is not None:
                ahead = asyncio.ensure_future(self._call(name, _read, stream))
                yield chunk
        finally:
            # close() drops a half-read socket and release_conn() hands the connection
            # back; neither waits on the network. A read still in flight (the caller
            # stopped early) owns the response until it ends: closing it under the
            # worker thread would race, and waiting here could hold a cancelled
            # reader for a whole read timeout.
            if ahead.done():
                _finish(response, ahead)
            else:
                ahead.add_done_callback(functools.partial(_finish, response))

    def _open(self, key: str) -> tuple[Any, bytes]:
        """GET; an object of at most one read is read at once (one thread trip, not three)."""
        response = self._client.get_object(self._bucket, key)
        try:
            length = int(response.headers.get("content-length", "-1"))
        except ValueError:
            length = -1
        if not 0 <= length <= _READ_SIZE:
            return response, b""
        ended = False
        try:
            data = response.read()
            ended = True
            return None, data
        finally:
            _release(response, ended)

    async def read_blocks(self, name: str, sink: Callable[[memoryview], None], block: int) -> int:
        return await self._call(name, self._read_blocks, self._key(name), sink, block)

    def _read_blocks(self, key: str, sink: Callable[[memoryview], None], block: int) -> int:
        response = self._client.get_object(self._bucket, key)
        ended = False
        try:
            # http.client's readinto fills the block straight from the socket;
            # urllib3's own readinto reads into a fresh bytes object and copies it.
            raw = getattr(response, "_fp", None)
            readinto = raw.readinto if isinstance(raw, http.client.HTTPResponse) \
                else response.readinto
            total = pump(readinto, sink, block)
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and total != int(length):
                # The connection ended early: the network failed, not the object.
                raise urllib3.exceptions.IncompleteRead(total, int(length) - total)
            ended = True
            return total
        finally:
            _release(response, ended)

    async def exists(self, name: str) -> bool:
        try:
            await self._call(name, self._client.stat_object, self._bucket, self._key(name))
        except ObjectNotFound:
            return False
        return True

    async def delete(self, name: str) -> None:
        await self._call(name, self._delete, name, self._key(name))

    def _delete(self, name: str, key: str) -> None:
        """Delete the object's version, so the data goes and object lock applies.

        On a versioned bucket (object lock implies versioning) a DELETE by name
        only adds a delete marker, which S3 accepts even for a retained object:
        the vault would then neither hold the object nor have destroyed it.
        """
        try:
            stat = self._client.stat_object(self._bucket, key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                return
            raise
        try:
            self._client.remove_object(self._bucket, key, version_id=stat.version_id)
        except S3Error as exc:
            # AccessDenied is also what a missing permission gives: only an
            # object that HEAD showed under lock is reported as locked.
            lock = _lock_of(stat.metadata or {})
            if exc.code != "AccessDenied" or lock is None:
                raise
            raise RetentionLocked(f"object {name} is {lock}: S3 refuses to delete it") from exc

    async def listing(self) -> AsyncIterator[tuple[str, dt.datetime]]:
        """Listed a page at a time (minio's iterator is lazy): a big bucket stays off-heap."""
        cut = len(self._prefix)
        objects = iter(self._client.list_objects(
            self._bucket, prefix=self._prefix or None, recursive=True))
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

        def _page() -> list[tuple[str, dt.datetime]]:
            return [((o.object_name or "")[cut:], o.last_modified or epoch)
                    for o in itertools.islice(objects, 1000)]

        while page := await self._call("", _page):
            for name, modified in page:
                if _NAME_RE.match(name):
                    yield name, modified

    async def set_legal_hold(self, name: str, on: bool) -> None:
        """S3's legal hold, beside pli's own; only buckets with object lock have one."""
        if not self._lock:
            return
        call = (self._client.enable_object_legal_hold if on
                else self._client.disable_object_legal_hold)
        await self._call(name, call, self._bucket, self._key(name))

    async def ensure_bucket(self) -> None:
        """Create the bucket if missing (with object lock when configured), or check it."""
        await self._call("", self._ensure_bucket)

    def _ensure_bucket(self) -> None:
        if not self._client.bucket_exists(self._bucket):
            try:
                self._client.make_bucket(self._bucket, self._region, object_lock=bool(self._lock))
            except S3Error as exc:
                if exc.code != "BucketAlreadyOwnedByYou":  # lost a race with another gateway
                    raise
            else:
                return
        if self._lock:
            try:
                self._client.get_object_lock_config(self._bucket)
            except S3Error as exc:
                raise VaultError(
                    f"bucket {self._bucket} has no object lock, which object_lock="
                    f"{self._lock} needs; object lock can only be enabled at creation") from exc

    async def aclose(self) -> None:
        """Wait for running calls, then stop the threads and close the connections."""
        await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)
        self._http.clear()
