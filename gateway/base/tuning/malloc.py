"""Process-wide allocator settings for a long-running server (glibc only; a no-op elsewhere).

glibc raises its mmap threshold each time a large block is freed (up to 32
MiB): after a few argon2 hashes (64 MiB each) or big message bodies, every
later 100 KB-10 MB buffer comes from the heap, which fragments and never
shrinks (the IMAP benchmark's RSS after its load: docs/benchmarks.md, "Tuning
notes"). Fixing the threshold (which turns the
dynamic adjustment off), trimming the heap top eagerly and capping the arenas
per thread pool keeps a mail server's RSS near its working set. It must run
before any thread starts: ``pli serve`` calls it first.

Relies on glibc's ``mallopt(3)`` (a documented call, reached through ctypes;
these three parameters are unchanged since glibc 2.x, tested on 2.36); on
another C library nothing is changed. Switch: ``[tuning] malloc``.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["tune_allocator"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator(mmap_threshold: int = 128 * 1024, arenas: int = 2) -> bool:
    """Apply the settings; False when the C library is not glibc (nothing changed)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
    ok &= mallopt(_M_TRIM_THRESHOLD, mmap_threshold) == 1
    ok &= mallopt(_M_ARENA_MAX, arenas) == 1
    return bool(ok)
