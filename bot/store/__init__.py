"""Persistence: the only package in newsbot that writes SQL.

``await Store.open(target)`` opens SQLite for a file path and PostgreSQL for a
``postgresql://`` URL; both behave the same (see :mod:`bot.store.base`).
"""

from .base import (
    SEARCH_RETENTION,
    CorpusChanges,
    DigestRecord,
    DigestStatus,
    FeedApplied,
    Follow,
    FollowLimitReached,
    GuildSettings,
    ReloadChanges,
    ReloadState,
    SavedSearch,
    SeedFileRecord,
    SourceState,
    StaleReloadError,
    Store,
    StoreError,
    is_database_url,
    new_search_id,
)

__all__ = [
    "SEARCH_RETENTION",
    "CorpusChanges",
    "DigestRecord",
    "DigestStatus",
    "FeedApplied",
    "Follow",
    "FollowLimitReached",
    "GuildSettings",
    "ReloadChanges",
    "ReloadState",
    "SavedSearch",
    "SeedFileRecord",
    "SourceState",
    "StaleReloadError",
    "Store",
    "StoreError",
    "is_database_url",
    "new_search_id",
]
