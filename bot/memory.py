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
