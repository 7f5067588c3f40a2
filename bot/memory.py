"""Giving memory back to the system after a burst of allocations.

CPython frees small objects into its own arenas and large buffers into the C library's heap;
glibc keeps much of what was freed mapped, so a process that once built a 100,000-article index
would go on showing the peak of that build as its resident size. ``malloc_trim`` returns the
free pages. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import lru_cache

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_free_memory() -> bool:
    """Return freed heap pages to the system; True if the C library could."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))


#: mallopt's parameter number for the mmap threshold (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
#: Allocations from this size up get a mapping of their own, returned to the system when freed.
MMAP_THRESHOLD = 128 * 1024


def map_large_allocations() -> bool:
    """Fix glibc's mmap threshold at 128 KiB; True if the C library took it.

    glibc raises the threshold each time a mapped block is freed (up to 32 MiB), after which
    large blocks come from the heap instead. Each index version allocates arrays of hundreds of
    KiB to MiBs and frees the previous version's: from the heap, they fragment it and the
    process grows with every change (+37 MB over 60 one-file changes at 10,000 articles, against
    +6 MB with the threshold fixed). Fixed, every large array is a mapping of its own.
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
