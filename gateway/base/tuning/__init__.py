"""Every place pli leans on another project's internals for speed or memory, fenced.

Each item below says what it changes, what it relies on, what it buys, the
versions it is tested with (pyproject.toml pins the upper bounds), and its
``[tuning]`` switch (:class:`gateway.base.config.TuningSettings`). All are on by
default; each can be turned off on its own, which puts the other project's
stock behaviour back, e.g. when an upgrade breaks the item. A switched-off item
does not touch the internals it would use. Tests run each item on both paths,
and ``pli serve`` once with every switch off (tests/gateway/test_tuning.py,
which also fails when another module reaches into these internals). The
figures, each item against its stock path: docs/benchmarks.md, "Fenced
internals".

``sqlite_one_trip`` (:mod:`gateway.base.tuning.sqlite`)
    SQLAlchemy's aiosqlite dialect with one trip to aiosqlite's thread per
    statement instead of four, and no reset rollback when SQLite has no open
    transaction: a read takes 1 trip instead of 5, a durable insert 2. Relies
    on SQLAlchemy's aiosqlite adapter classes and on aiosqlite's
    ``Connection._execute``; tested with SQLAlchemy 2.1.0 and 2.1.9, aiosqlite
    0.20.0 and 0.22.1 (bounded to 2.1.x and below 0.23). Buys: IMAP sessions
    (reads) about a quarter faster; SMTP ingest, whose commits are grouped,
    gains nothing measurable. Off: SQLAlchemy's own dialect.

``malloc`` (:mod:`gateway.base.tuning.malloc`)
    glibc's ``mallopt``: a fixed mmap threshold, eager trimming, two arenas.
    Relies on glibc (tested 2.36; another C library is left alone). Buys:
    RSS after a burst of large buffers stays near the working set. Applied by
    ``pli serve`` before any thread starts. Off: glibc's defaults.

``tls_read_buffer`` (:mod:`gateway.base.tuning.tlsbuffer`)
    asyncio's per-connection TLS read buffer (``SSLProtocol.max_size``, a
    class attribute: a process-wide patch) at 32 KiB instead of 256 KiB.
    Relies on CPython's ``asyncio.sslproto``; tested with CPython 3.11.7,
    3.12.1 and 3.13.0. Buys: an idle TLS connection costs about a fifth of
    the memory. Applied by ``pli serve`` before it listens. Off: asyncio's
    256 KiB.

``smtp_bulk_data`` (:mod:`gateway.smtp.data`, :meth:`gateway.smtp.server.PliSMTP.smtp_DATA`)
    SMTP DATA read as it arrives and searched for the end marker in bulk,
    instead of aiosmtpd's one ``readuntil`` per line. Relies on aiosmtpd's
    DATA steps (``_set_post_data_state``, ``_call_handler_hook``...) and on
    asyncio's ``StreamReader._buffer`` (to put back commands pipelined after
    the final dot); tested with aiosmtpd 1.4.6 (bounded below 1.5). Buys:
    SMTP ingest about 30 % faster. Off: aiosmtpd's own DATA.

``s3_direct`` (:mod:`vault.s3_direct`, which has its own note)
    S3 uploads and whole reads through minio's private calls and the socket
    under urllib3's response, sparing the copies minio's public
    ``put_object``/``get_object`` make. Tested with minio 7.2.20 and urllib3
    2.8.0 (bounded to 7.2.x and below 3). Buys: a 10 MB vault get about 1.5
    times faster. Off: minio's public calls.

Removed rather than fenced: ``vault/buffers.py`` grew bytearrays with
CPython's ``PyByteArray_Resize`` (``ctypes.pythonapi``) and populated them
with ``madvise``, skipping the zero fill: buffers that held another message's
freed plaintext until overwritten. It saved about 3 ms per 10 MB vault get and
nothing a user could see (IMAP FETCH of 10 MB bodies did not change).

Internals used for function rather than speed have no stock path to switch to
and are bounded the same way: the IMAP STARTTLS upgrade discards plaintext
pipelined behind the command (``StreamReader._buffer``, CVE-2011-0411), and
implicit TLS on SMTP port 465 marks aiosmtpd's session as protected
(``_tls_protocol``, ``session.ssl``).
"""
