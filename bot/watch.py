"""Watching folder sources: a file added, changed or removed is loaded within seconds.

The operating system tells (inotify, FSEvents, ReadDirectoryChangesW, through ``watchfiles``),
so an idle folder of 100,000 files costs nothing; rescanning it to find a change would cost
a second of CPU each time. Changes are gathered for a moment (an editor's save, a ``git
checkout`` or an ``rsync`` touches many files at once) and then only the files that changed
are loaded (:func:`bot.loader.load_changed`); a sub-folder that came or went gets the whole
folder loaded, which reads only what changed. Where the system refuses a watch (inotify's
limit, a network file system), the folder is polled instead; a folder that does not exist yet
is waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from .loader import SEED_SUFFIXES

log = logging.getLogger(__name__)

#: Milliseconds of quiet gathered into one load (a burst of saves is loaded once).
DEBOUNCE_MS = 400
#: How often a watch looks whether it was asked to stop, in ms.
STEP_MS = 50
#: When the system refuses to watch: poll the folder this often, in ms.
POLL_DELAY_MS = 1000
#: A missing folder is looked for again after this many seconds.
MISSING_RETRY_SECONDS = 2.0


def is_seed_change(root: Path, path: str) -> bool:
    """Whether a changed path under ``root`` can matter to a load: a seed file, a folder that
    may hold some, or something gone (a deleted folder cannot be told from a file); never a
    hidden file or folder (an editor's swap file, ``.git``), which the loader skips too."""
    changed = Path(path)
    try:
        parts = changed.relative_to(root).parts
    except ValueError:
        return True
    if any(part.startswith(".") for part in parts):
        return False
    if changed.suffix.lower() in SEED_SUFFIXES:
        return True
    return changed.is_dir() or not changed.exists()


async def watch_folder(
    folder: Path,
    on_change: Callable[[frozenset[str] | None], Awaitable[None]],
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Call ``on_change(paths)`` after each burst of changes to seed files under ``folder``
    with the paths that changed (written, created or deleted; sub-folders that came or went
    too), or with None when the whole folder is to be loaded (it appeared), until cancelled
    (or ``stop`` is set). Never raises: a watch that fails is retried by polling."""
    from watchfiles import awatch

    folder = folder.absolute()
    force_polling = False
    stop = stop or asyncio.Event()

    def seed_changes(_change: object, path: str) -> bool:
        return is_seed_change(folder, path)

    while not stop.is_set():
        if not folder.is_dir():
            await _sleep_or_stop(stop, MISSING_RETRY_SECONDS)
            if folder.is_dir():
                await on_change(None)  # it appeared: load what it holds
            continue
        try:
            async for changes in awatch(
                folder,
                watch_filter=seed_changes,
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=stop,
                force_polling=force_polling,
                poll_delay_ms=POLL_DELAY_MS,
                recursive=True,
                ignore_permission_denied=True,
            ):
                await on_change(frozenset(path for _change, path in changes))
                if not folder.is_dir():
                    break  # removed: its last load said so; wait for it to come back
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if force_polling:
                log.warning("cannot watch %s (%s); trying again", folder, exc)
                await _sleep_or_stop(stop, MISSING_RETRY_SECONDS)
            else:
                log.warning(
                    "cannot watch %s (%s); polling it every %d ms instead",
                    folder,
                    exc,
                    POLL_DELAY_MS,
                )
                force_polling = True


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
