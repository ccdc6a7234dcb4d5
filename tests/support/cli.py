"""Run the ``pli`` command for a test: in this process, or as a real process.

A new interpreter costs about a second before ``pli`` does anything (it imports
every command group), and the suite ran some seventy of them. ``pli_in_process``
calls the same ``gateway.cli.main.main`` the console script calls, with its own
stdin, stdout, stderr and environment (no ``PLI_*`` variable of the test run
leaks in), and answers what ``subprocess.run(..., text=True)`` would: the exit
code (a usage error's ``SystemExit`` included) and the text, newlines
translated. Tests of the process itself (``python -m gateway``, exit codes as
the shell sees them, signals, one-line errors with nothing else on stderr) use
``pli_process``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

__all__ = ["PLI", "clean_env", "pli_in_process", "pli_process"]

PLI = [sys.executable, "-m", "gateway"]

# sys.stdin/stdout/stderr and os.environ belong to the whole process: one command at a time.
_LOCK = threading.Lock()


def clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its ``PLI_*`` variables, plus ``env``."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("PLI_")}
    out.update(env or {})
    return out


def pli_process(
    *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m gateway ARGS`` in a process of its own."""
    return subprocess.run(
        [*PLI, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(env),
    )


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    raw = stream.buffer
    assert isinstance(raw, io.BytesIO)
    # What subprocess.run(text=True) gives: decoded, universal newlines.
    return raw.getvalue().decode().replace("\r\n", "\n").replace("\r", "\n")


def _call(argv: list[str], stdin: str | None, env: dict[str, str]) -> tuple[int, str, str]:
    from gateway.cli.main import main

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    inp = io.TextIOWrapper(io.BytesIO((stdin or "").encode()), encoding="utf-8")
    with _LOCK, _environ(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        saved_stdin, sys.stdin = sys.stdin, inp
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: usage errors (2), --help (0)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdin = saved_stdin
    return code, _text(out), _text(err)


def pli_in_process(
    *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``pli ARGS`` through ``gateway.cli.main.main`` in this process.

    From inside a running event loop (an async test) the command runs on a thread
    of its own, since it starts its own loop; the test's loop waits for it, so call
    it from a test whose servers run elsewhere (use ``asyncio.to_thread`` otherwise).
    """
    argv = list(args)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        code, out, err = _call(argv, stdin, clean_env(env))
    else:
        with ThreadPoolExecutor(1) as pool:
            code, out, err = pool.submit(_call, argv, stdin, clean_env(env)).result()
    return subprocess.CompletedProcess(["pli", *argv], code, out, err)
