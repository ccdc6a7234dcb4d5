"""Large buffers that will be overwritten whole, without the page-fault bill of ``bytearray(n)``.

On the virtual machines pli runs on a page fault costs 1-3 µs, and
``bytearray(n)`` zero-fills its pages one fault at a time: 7.4 ms for 10 MB
on the 2-core test VM, five times the AES-GCM work of decrypting them, and more
than a plain S3 read pays to land the same bytes (its faults happen inside the
kernel's copy). A buffer that is about to be overwritten instead grows without
the fill (``PyByteArray_Resize``, CPython's C API) and has its pages populated
by the kernel in one ``madvise(MADV_POPULATE_WRITE)`` call (Linux 5.14+): 3.8
ms for the same 10 MB, and off the critical path when another thread does it
while the bytes are on their way (:meth:`vault.service.Vault.get`). Where
either call is missing it is a plain ``bytearray(n)``.

The contents start undefined (on a reused heap block, bytes this process freed
earlier): a caller must write every byte before the buffer leaves its hands,
and drop it on any failure. :class:`vault.crypto.BufferDecryptor` returns its
buffer only once every chunk was decrypted into it.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["POPULATE_MIN", "populate", "writable_buffer"]

_MADV_POPULATE_WRITE = 23  # linux/mman.h, since 5.14
POPULATE_MIN = 256 * 1024  # below this the zero fill costs next to nothing


@functools.cache
def _native() -> tuple[Callable[[bytearray, int], int] | None, Callable[..., int] | None]:
    """CPython's bytearray resize and libc's madvise, if this interpreter and OS have them."""
    try:
        resize: Any = ctypes.pythonapi.PyByteArray_Resize
    except AttributeError:  # not CPython
        return None, None
    resize.argtypes = [ctypes.py_object, ctypes.c_ssize_t]
    resize.restype = ctypes.c_int
    madvise: Any = None
    if sys.platform == "linux":
        try:
            madvise = ctypes.CDLL(None, use_errno=True).madvise
        except (OSError, AttributeError):
            madvise = None
        else:
            madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            madvise.restype = ctypes.c_int
    return resize, madvise


def writable_buffer(size: int, *, populated: bool = True) -> bytearray:
    """A bytearray of ``size`` bytes whose contents are undefined (see the module docstring).

    ``populated=False`` leaves the pages to :func:`populate`, which a caller can
    run on another thread while it waits for the bytes to put there.
    """
    resize, _ = _native()
    if size < POPULATE_MIN or resize is None:
        return bytearray(size)
    buf = bytearray()
    if resize(buf, size) != 0:  # MemoryError is set by CPython and raised by ctypes
        return bytearray(size)
    if populated:
        populate(buf)
    return buf


def populate(buf: bytearray) -> None:
    """Have the kernel back every page of ``buf`` now, in one call (the GIL is released).

    Failure (an older kernel: EINVAL) only means the pages fault in on first write.
    """
    _, madvise = _native()
    if madvise is None or len(buf) < POPULATE_MIN:
        return
    start = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    page = start - start % mmap.PAGESIZE
    madvise(page, start + len(buf) - page, _MADV_POPULATE_WRITE)
