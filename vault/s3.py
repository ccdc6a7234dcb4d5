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
within seconds, which SMTP answers with 451. The uploads and whole reads use
private minio and urllib3 calls, fenced in :mod:`vault.s3_direct` (what they
spare, the versions they are tested with); ``direct=False`` keeps to minio's
public ``put_object`` and ``get_object``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import datetime as dt
import functools
import io
import itertools
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, Literal, TypeVar, cast

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import MinioException, S3Error
from minio.retention import Retention
from urllib3.util import Retry, Timeout

from vault import s3_direct
from vault.base import ObjectNotFound, RetentionLocked, VaultError, VaultUnavailable, pump

__all__ = ["RetentionLocked", "S3BlobStore"]  # RetentionLocked: re-exported from vault.base

T = TypeVar("T")
_NAME_RE = re.compile(r"^[0-9a-f]{32}(\.[a-z0-9]{1,16})?$")
_MIN_PART = 5 * 1024 * 1024  # S3's smallest multipart part
_SINGLE_PUT_MAX = 64 * 1024 * 1024  # objects the caller holds whole go up in one PUT
_READ_SIZE = 1024 * 1024  # per thread trip: fewer hops, still a bounded buffer


async def _gather(
    chunks: AsyncIterator[bytes | bytearray], want: int
) -> tuple[bytes | bytearray, bool]:
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


class _SourceGone(Exception):
    """The source failed or the put was abandoned: minio aborts its upload."""


async def _next(chunks: AsyncIterator[bytes | bytearray]) -> bytes | bytearray | None:
    return await anext(chunks, None)


class _LoopReader:
    """A blocking ``read()`` over the loop's async source, for minio's public put_object.

    put_object runs on a pool thread and reads its parts from a file-like object;
    each read here waits for the event loop to produce the next pieces. When the
    put is abandoned (cancelled, failed) :meth:`close` wakes a waiting read, which
    raises so that minio aborts the multipart upload; the source's own exception
    is kept in ``error`` for the caller to raise as it was.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        chunks: AsyncIterator[bytes | bytearray],
        first: bytes | bytearray,
    ) -> None:
        self._loop = loop
        self._chunks = chunks
        self._pending: list[bytes | bytearray] = [first] if first else []
        self._have = len(first)
        self._ended = False
        self._closed = False
        self._waiting: concurrent.futures.Future[bytes | bytearray | None] | None = None
        self.error: BaseException | None = None
        self.count = 0  # bytes handed to minio

    def read(self, size: int = -1) -> bytes:
        while not self._ended and (size < 0 or self._have < size):
            self._pending.append(piece := self._wait())
            self._have += len(piece)
        data = b"".join(self._pending)
        if 0 <= size < len(data):
            data, rest = data[:size], data[size:]
            self._pending, self._have = [rest], len(rest)
        else:
            self._pending, self._have = [], 0
        self.count += len(data)
        return data

    def _wait(self) -> bytes | bytearray:
        """The source's next piece (b"" once it ended), waited for on this thread."""
        if self._closed:
            raise _SourceGone("the put was abandoned")
        waiting = asyncio.run_coroutine_threadsafe(_next(self._chunks), self._loop)
        self._waiting = waiting
        if self._closed:  # close() ran before _waiting was set: it could not cancel
            waiting.cancel()
        try:
            piece = waiting.result()
        except concurrent.futures.CancelledError:
            raise _SourceGone("the put was abandoned") from None
        except Exception as exc:
            self.error = exc
            raise _SourceGone("the source failed") from exc
        finally:
            self._waiting = None
        if piece is None:
            self._ended = True
            return b""
        return piece

    def close(self) -> None:
        """From the loop: make a waiting or later read raise."""
        self._closed = True
        waiting = self._waiting
        if waiting is not None:
            waiting.cancel()


def _read(stream: Iterator[bytes]) -> bytes | None:
    return next(stream, None)


def _finish(response: Any, last_read: asyncio.Future[bytes | None]) -> None:
    ended = (
        not last_read.cancelled() and last_read.exception() is None and last_read.result() is None
    )  # also retrieves an exception nobody awaited
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
    ``direct=False`` keeps to minio's public calls (see :mod:`vault.s3_direct`).
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = True,
        region: str | None = None,
        prefix: str = "",
        object_lock: Literal["", "GOVERNANCE", "COMPLIANCE"] = "",
        retention_days: int = 0,
        part_size: int = _MIN_PART,
        workers: int = 8,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        direct: bool = True,
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
        self._direct = direct  # minio's private calls (vault/s3_direct.py), or its public ones
        # minio's default client waits 5 minutes and retries 5 times: a stopped
        # server would hold an SMTP transaction for minutes instead of a quick 451.
        # A read timeout is not retried: a hung server then costs one timeout.
        self._http = urllib3.PoolManager(
            timeout=Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=workers,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=Retry(
                total=2, read=0, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=self._http,
        )
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

    async def put(
        self,
        name: str,
        chunks: AsyncIterator[bytes | bytearray],
        retain_until: dt.datetime | None = None,
        size: int | None = None,
    ) -> int:
        key = self._key(name)
        # A caller that already holds the whole object (and says how big it is) gets
        # one PUT instead of a multipart upload, up to _SINGLE_PUT_MAX.
        limit = size if size is not None and self._part < size <= _SINGLE_PUT_MAX else self._part
        # The first part is gathered here: a message that fits costs one thread trip
        # and one PUT, and a slow producer holds no worker thread meanwhile.
        data, ended = await _gather(chunks, limit + 1)
        if ended:
            await self._call(name, self._upload, key, data, retain_until)
            return len(data)
        if not self._direct:
            source = _LoopReader(asyncio.get_running_loop(), chunks, data)
            del data  # the reader holds the first part now
            try:
                return await self._call(name, self._upload_stream, key, source, retain_until)
            except BaseException:
                source.close()  # a thread waiting for the source gives up, and minio aborts
                if source.error is not None:
                    raise source.error from None  # the source's own failure, as it was
                raise
        first = [data]  # upload_parts takes it out, so that it is freed once sent
        del data
        call = functools.partial(self._call, name)
        total, version = await s3_direct.upload_parts(
            call,
            self._client,
            self._bucket,
            key,
            first,
            functools.partial(_gather, chunks),
            self._part,
        )
        if self._lock:
            await call(self._lock_object, key, version, retain_until)
        return total

    def _upload(self, key: str, data: bytes | bytearray, retain_until: dt.datetime | None) -> None:
        """One PutObject of an object held whole (on a pool thread)."""
        if self._direct:
            version = s3_direct.put_bytes(self._client, self._bucket, key, data)
        else:
            # One part of the object's size (at least S3's smallest) makes one PUT.
            version = self._client.put_object(
                self._bucket,
                key,
                io.BytesIO(data),
                len(data),
                part_size=max(self._part, len(data)),
                num_parallel_uploads=1,
            ).version_id
        if self._lock:
            self._lock_object(key, version, retain_until)

    def _upload_stream(
        self, key: str, source: _LoopReader, retain_until: dt.datetime | None
    ) -> int:
        """minio's own multipart upload, reading the loop's source (on a pool thread)."""
        result = self._client.put_object(
            self._bucket,
            key,
            cast(BinaryIO, source),
            -1,
            part_size=self._part,
            num_parallel_uploads=1,
        )
        if self._lock:
            self._lock_object(key, result.version_id, retain_until)
        return source.count

    def _lock_object(
        self, key: str, version_id: str | None, retain_until: dt.datetime | None
    ) -> None:
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
                self._bucket, key, Retention(self._lock, until), version_id=version_id
            )
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
            readinto = (
                s3_direct.socket_readinto(response) if self._direct else None
            ) or response.readinto
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
        objects = iter(
            self._client.list_objects(self._bucket, prefix=self._prefix or None, recursive=True)
        )
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

        def _page() -> list[tuple[str, dt.datetime]]:
            return [
                ((o.object_name or "")[cut:], o.last_modified or epoch)
                for o in itertools.islice(objects, 1000)
            ]

        while page := await self._call("", _page):
            for name, modified in page:
                if _NAME_RE.match(name):
                    yield name, modified

    async def set_legal_hold(self, name: str, on: bool) -> None:
        """S3's legal hold, beside pli's own; only buckets with object lock have one."""
        if not self._lock:
            return
        call = (
            self._client.enable_object_legal_hold if on else self._client.disable_object_legal_hold
        )
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
                    f"{self._lock} needs; object lock can only be enabled at creation"
                ) from exc

    async def aclose(self) -> None:
        """Wait for running calls, then stop the threads and close the connections."""
        await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)
        self._http.clear()
