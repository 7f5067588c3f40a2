"""Configuration: a YAML file -> frozen dataclasses, with errors that name the file and the key.

Every key has a default (the dataclasses below; ``config/default.yaml`` documents them), so a
config file holds only what it changes. Relative paths written in a file are taken from that
file's folder; the defaults (``seeds``, ``newsbot.sqlite3``) from the working directory.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .articles import DEFAULT_MAX_BYTES, is_http_url
from .digest import parse_local_time, parse_timezone

ENV_CONFIG = "NEWSBOT_CONFIG"


class ConfigError(Exception):
    """A bad config file; ``str()`` is one line naming the file and the key."""


@dataclass(frozen=True, slots=True)
class SearchConfig:
    # Hits a /news reply pages through, and the default for `newsbot search --limit`.
    limit: int = 10
    # Longer queries are refused with an explanation (a search box, not an essay).
    max_query_length: int = 200
    # Per-user pause between two /news commands; 0 turns the cooldown off.
    cooldown_seconds: float = 2.0
    # Match queries by meaning too (a vector per article from a small built-in model), so a
    # story is found when its words differ from the query's; false: words and typos only.
    semantic: bool = True


@dataclass(frozen=True, slots=True)
class DigestConfig:
    # Defaults for every guild; moderators override them per guild with /digest.
    enabled: bool = True
    # guild id -> channel id the digest is posted to (a guild without one gets no digest
    # until a moderator runs /digest channel).
    channels: dict[int, int] = field(default_factory=dict)
    time: str = "09:00"
    timezone: str = "UTC"
    # Stories listed in one digest; the rest are counted.
    max_stories: int = 10
    # Post a "nothing new today" digest when there is nothing new.
    post_when_empty: bool = False
    # A bot that was down at digest time posts on start within this window, and not after.
    grace_hours: float = 6.0
    # How often the scheduler wakes to look for due digests.
    check_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class DiscordConfig:
    # Guilds whose commands are synced on start (they appear at once).
    guild_ids: tuple[int, ...] = ()
    # Roles whose members may run moderator commands, besides Manage Server.
    moderator_role_ids: tuple[int, ...] = ()
    # Where discord.py sends REST calls and opens the gateway; change only for a proxy or a
    # local test server.
    api_base: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg"
    # Run an AutoShardedBot with this many shards (Discord requires it above 2,500 guilds).
    shard_count: int | None = None
    # Run only these shards of shard_count in this process (the others run elsewhere, e.g.
    # started by `newsbot cluster`); empty: all of them.
    shard_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class FollowsConfig:
    # Follows one server may have (/follow refuses more).
    max_per_guild: int = 25


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    # Prometheus text at /metrics and a readiness check at /healthz, on a local port.
    enabled: bool = False
    # Loopback by default: the figures are for the operator's scraper, not the internet.
    host: str = "127.0.0.1"
    # 0 takes any free port (the log says which).
    port: int = 9108


#: What a source is: a feed's URL, a folder of seed files, or a git repository of them.
SOURCE_KINDS = ("feed", "folder", "git")
#: Seconds between polls when a source sets no ``every``: feeds and git repositories are
#: polled; a folder is watched, and rescanned this often only to catch what a watch missed.
DEFAULT_EVERY = {"feed": 900.0, "git": 900.0, "folder": 300.0}
#: The name the configured ``seeds_dir`` goes by among the sources.
SEEDS_SOURCE = "seeds"
_SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The shortest and the longest poll interval a source may ask for.
EVERY_RANGE = (1.0, 7 * 86400.0)


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One entry of ``sources:``: where articles come from and how often to look."""

    name: str
    kind: str  # one of SOURCE_KINDS
    # The feed's URL, the folder's path (absolute once loaded from a file), the repository's URL.
    location: str
    every: float  # seconds between polls (feeds, git) or safety rescans (folders)
    # Topics added to every article of this source.
    topics: tuple[str, ...] = ()
    # git only: the folder inside the repository that holds the seed files, and the branch.
    path: str = ""
    branch: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    seeds_dir: Path = Path("seeds")
    # A SQLite file, or a postgresql:// URL shared by several processes.
    database: Path | str = Path("newsbot.sqlite3")
    # Seed files larger than this are rejected unread.
    max_seed_bytes: int = DEFAULT_MAX_BYTES
    log_level: str = "INFO"
    # How often a running bot checks whether the collection changed in the database (another
    # process's load or reload); PostgreSQL also tells it at once.
    refresh_seconds: float = 2.0
    # A claim (a digest being posted, a reload) whose process stopped beating its heartbeat
    # for this long is taken over by another process.
    claim_timeout_seconds: float = 30.0
    search: SearchConfig = field(default_factory=SearchConfig)
    digest: DigestConfig = field(default_factory=DigestConfig)
    discord: DiscordConfig = field(default_factory=DiscordConfig)
    # `newsbot run` logs to this file (rotated) instead of stderr; None: stderr (the journal).
    log_file: Path | None = None
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    follows: FollowsConfig = field(default_factory=FollowsConfig)
    # Live sources besides seeds_dir (which is always the folder source "seeds").
    sources: tuple[SourceConfig, ...] = ()
    # A running bot loads a folder source's changes as they happen; false: only on its
    # ``every`` rescan and /seeds reload.
    watch_folders: bool = True
    # Feed articles published longer ago than this are removed (they stay after leaving the
    # feed until then); files of folder and git sources stay while the file does.
    feeds_keep_days: float = 90.0
    # Where git sources are cloned, one folder per source name.
    git_dir: Path = Path("newsbot-git")
    # Polls running at once (each fetch or git pull); the others wait their turn.
    poll_concurrency: int = 8
    # A feed body larger than this is refused (the source reports it).
    feed_max_bytes: int = 5 * 1024 * 1024
    # Seconds one feed fetch may take in all, a slow server included.
    feed_timeout_seconds: float = 30.0
    source: Path | None = None  # the file this came from, if any (not a key)


def load_config(path: Path | str | None = None) -> Config:
    """Read ``path`` (or $NEWSBOT_CONFIG); with neither, the embedded defaults."""
    if path is None:
        env = os.environ.get(ENV_CONFIG)
        if not env:
            return Config()
        path = env
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc})") from None
    try:
        # libyaml's loader where installed: a config listing hundreds of sources parses in
        # milliseconds instead of most of a second.
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file is a mapping of keys, not {type(raw).__name__}")
    config = _build(Config, raw, path, prefix="")
    base = path.resolve().parent
    # Paths written in the file are relative to the file; untouched defaults stay as they are.
    changes: dict[str, Any] = {"source": path}
    for key in ("seeds_dir", "database", "git_dir"):
        value = getattr(config, key)
        if key in raw and isinstance(value, Path) and not value.is_absolute():
            changes[key] = base / value
    if config.log_file is not None and not config.log_file.is_absolute():
        changes["log_file"] = base / config.log_file
    changes["sources"] = tuple(
        dataclasses.replace(s, location=str(base / s.location))
        if s.kind == "folder" and not Path(s.location).is_absolute()
        else s
        for s in config.sources
    )
    return dataclasses.replace(config, **changes)


def database_target(text: str) -> Path | str:
    """A ``database`` value: a ``postgresql://`` URL stays text, anything else is a path."""
    text = text.strip()
    if text.startswith(("postgresql://", "postgres://")):
        return text
    return Path(text)


def _build(cls: type, raw: dict[Any, Any], path: Path, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in known:
            choices = ", ".join(sorted(known))
            raise ConfigError(f"{path}: unknown key '{dotted}' (known here: {choices})")
        expected = hints[key]
        if cls is Config and key == "sources":
            values[key] = _sources(value, path)
        elif isinstance(expected, type) and dataclasses.is_dataclass(expected):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: '{dotted}' must be a mapping of keys")
            values[key] = _build(expected, value, path, prefix=f"{dotted}.")
        else:
            values[key] = _coerce(value, expected, path, dotted)
    try:
        instance = cls(**values)
    except TypeError as exc:  # pragma: no cover - every key was checked above
        raise ConfigError(f"{path}: {exc}") from None
    _validate(instance, path, prefix)
    return instance


def _coerce(value: Any, expected: Any, path: Path, key: str) -> Any:
    """Check ``value`` against a type hint, converting where YAML's types are looser."""
    origin = typing.get_origin(expected)
    args = typing.get_args(expected)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        if set(args) == {Path, str}:  # the database: a file, or a server's URL
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{path}: '{key}' must be a path or a postgresql:// URL")
            return database_target(value)
        inner = next(a for a in args if a is not type(None))
        return _coerce(value, inner, path, key)
    if expected is Path:
        if isinstance(value, str) and value.strip():
            return Path(value)
        raise ConfigError(f"{path}: '{key}' must be a path (a non-empty string)")
    if expected is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: '{key}' must be true or false, not {value!r}")
    if expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = value.strip() if isinstance(value, str) else ""
        if text.isascii() and text.isdigit():  # snowflakes are often quoted
            return int(text)
        raise ConfigError(f"{path}: '{key}' must be a whole number, not {value!r}")
    if expected is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                return number
        raise ConfigError(f"{path}: '{key}' must be a finite number, not {value!r}")
    if expected is str:
        if isinstance(value, str):
            return value
        hint = ' (put it in quotes, e.g. "18:30")' if isinstance(value, int | float) else ""
        raise ConfigError(f"{path}: '{key}' must be a string, not {value!r}{hint}")
    if origin is tuple:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise ConfigError(f"{path}: '{key}' must be a list, not {value!r}")
        return tuple(_coerce(v, args[0], path, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: '{key}' must be a mapping, not {value!r}")
        return {
            _coerce(k, args[0], path, f"{key} key {k!r}"): _coerce(v, args[1], path, f"{key}.{k}")
            for k, v in value.items()
        }
    raise ConfigError(f"{path}: '{key}' has an unsupported type")  # pragma: no cover


def parse_every(value: Any) -> float:
    """A poll interval: seconds as a number, or text such as "90", "30s", "15m", "2h", "1d"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip().lower())):
        seconds = float(match[1]) * _UNIT_SECONDS[match[2] or "s"]
    else:
        raise ValueError(f"must be seconds or a duration such as 15m, 2h, 1d, not {value!r}")
    low, high = EVERY_RANGE
    if not (math.isfinite(seconds) and low <= seconds <= high):
        raise ValueError(f"must be between 1 second and 7 days, not {value!r}")
    return seconds


def _sources(raw: Any, path: Path) -> tuple[SourceConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: 'sources' must be a list of sources, not {raw!r}")
    sources = tuple(_source(entry, path, f"sources[{i}]") for i, entry in enumerate(raw))
    seen: dict[str, str] = {}
    for i, source in enumerate(sources):
        folded = source.name.casefold()
        if folded == SEEDS_SOURCE and source.kind != "folder":
            raise ConfigError(
                f"{path}: 'sources[{i}].name' {SEEDS_SOURCE!r} is the seeds_dir folder's name;"
                " choose another"
            )
        if folded in seen:
            raise ConfigError(
                f"{path}: 'sources[{i}].name' {source.name!r} is already the name of"
                f" {seen[folded]}; each source needs its own name"
            )
        seen[folded] = f"sources[{i}]"
    return sources


_SOURCE_KEYS = frozenset({"name", *SOURCE_KINDS, "every", "topics", "path", "branch"})


def _source(raw: Any, path: Path, where: str) -> SourceConfig:
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: '{where}' must be a mapping such as {{name: world, feed: https://...}}"
        )
    for key in raw:
        if key not in _SOURCE_KEYS:
            known = ", ".join(sorted(_SOURCE_KEYS))
            raise ConfigError(f"{path}: unknown key '{where}.{key}' (known here: {known})")
    name = raw.get("name")
    if not isinstance(name, str) or not _SOURCE_NAME.fullmatch(name):
        raise ConfigError(
            f"{path}: '{where}.name' must be 1-40 letters, digits, '.', '_' or '-'"
            f" (starting with a letter or digit), not {name!r}"
        )
    kinds = [kind for kind in SOURCE_KINDS if kind in raw]
    if len(kinds) != 1:
        raise ConfigError(
            f"{path}: '{where}' ({name}) needs exactly one of feed, folder or git"
            + (f", not {' and '.join(kinds)}" if kinds else "")
        )
    kind = kinds[0]
    location = raw[kind]
    if not isinstance(location, str) or not location.strip():
        raise ConfigError(f"{path}: '{where}.{kind}' must be a non-empty string")
    location = location.strip()
    if kind == "feed" and not is_http_url(location):
        raise ConfigError(
            f"{path}: '{where}.feed' must be an http:// or https:// URL, not {location!r}"
        )
    for key in ("path", "branch"):
        if key in raw and kind != "git":
            raise ConfigError(f"{path}: '{where}.{key}' applies to git sources only")
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise ConfigError(f"{path}: '{where}.{key}' must be a non-empty string")
    sub = raw.get("path", "").strip().strip("/")
    if sub and (Path(sub).is_absolute() or ".." in Path(sub).parts):
        raise ConfigError(f"{path}: '{where}.path' must be a folder inside the repository")
    try:
        every = parse_every(raw["every"]) if "every" in raw else DEFAULT_EVERY[kind]
    except ValueError as exc:
        raise ConfigError(f"{path}: '{where}.every' {exc}") from None
    topics = _coerce(raw.get("topics"), tuple[str, ...], path, f"{where}.topics")
    topics = tuple(t.strip() for t in topics if t.strip())
    return SourceConfig(
        name=name,
        kind=kind,
        location=location,
        every=every,
        topics=topics,
        path=sub,
        branch=raw["branch"].strip() if "branch" in raw else None,
    )


def all_sources(config: Config) -> tuple[SourceConfig, ...]:
    """The configured sources, with ``seeds_dir`` as the folder source "seeds" unless a
    configured folder source is that folder already."""
    seeds = Path(config.seeds_dir).absolute()
    listed = any(
        s.kind == "folder" and Path(s.location).absolute() == seeds for s in config.sources
    )
    if listed or any(s.name.casefold() == SEEDS_SOURCE for s in config.sources):
        return config.sources
    implicit = SourceConfig(SEEDS_SOURCE, "folder", str(config.seeds_dir), DEFAULT_EVERY["folder"])
    return (implicit, *config.sources)


#: The most shards newsbot accepts (discord.shard_count; shard ids are below it).
MAX_SHARDS = 65536

#: The inclusive range of every numeric key, by section.
_RANGES: dict[type, dict[str, tuple[float, float]]] = {
    Config: {
        # One seed is read whole into memory; a news article is a few KB.
        "max_seed_bytes": (1, 64 * 1024 * 1024),
        "refresh_seconds": (0.1, 3600),
        "claim_timeout_seconds": (1, 3600),
        "feeds_keep_days": (1, 36500),
        "poll_concurrency": (1, 64),
        "feed_max_bytes": (1024, 256 * 1024 * 1024),
        "feed_timeout_seconds": (1, 600),
    },
    SearchConfig: {
        "limit": (1, 25),  # the pages a reply's buttons go through
        "max_query_length": (1, 6000),  # Discord's longest string option
        "cooldown_seconds": (0, 86400),
    },
    DigestConfig: {
        "max_stories": (1, 25),
        "grace_hours": (0, 24),
        "check_seconds": (0.01, 3600),
    },
    DiscordConfig: {
        "shard_count": (1, MAX_SHARDS),
    },
    MetricsConfig: {
        "port": (0, 65535),  # 0: any free port
    },
    FollowsConfig: {
        "max_per_guild": (1, 1000),
    },
}

#: Keys holding Discord ids (snowflakes), which the database stores as signed 64-bit integers.
_SNOWFLAKE_LISTS: dict[type, tuple[str, ...]] = {
    DigestConfig: ("channels",),
    DiscordConfig: ("guild_ids", "moderator_role_ids"),
}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _snowflakes(value: Any) -> list[int]:
    if isinstance(value, dict):  # digest.channels: guild id -> channel id
        return [*value.keys(), *value.values()]
    return list(value)


def _validate(instance: Any, path: Path, prefix: str) -> None:
    """Range and format checks that types alone cannot express."""

    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"{path}: '{prefix}{key}' {why}")

    # Every number is bounded by what the code can use: a file size Python can read in one
    # piece, a count Discord allows, a time asyncio can sleep; never just "positive".
    for key, (low, high) in _RANGES.get(type(instance), {}).items():
        value = getattr(instance, key)
        if value is not None and not low <= value <= high:
            raise bad(key, f"must be between {_number(low)} and {_number(high)}, not {value}")
    for key in _SNOWFLAKE_LISTS.get(type(instance), ()):
        for value in _snowflakes(getattr(instance, key)):
            if not 0 < value < 2**63:
                raise bad(key, f"holds {value}, which is not a Discord id (1 to 2^63 - 1)")

    if isinstance(instance, Config):
        if instance.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise bad("log_level", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    elif isinstance(instance, DigestConfig):
        try:
            parse_local_time(instance.time)
        except ValueError as exc:
            raise bad("time", f"is invalid: {exc}") from None
        try:
            parse_timezone(instance.timezone)
        except ValueError as exc:
            raise bad("timezone", f"is invalid: {exc}") from None
    elif isinstance(instance, DiscordConfig):
        for key in ("api_base", "gateway_url"):
            value = getattr(instance, key)
            if "://" not in value:
                raise bad(key, f"must be a URL, not {value!r}")
        if instance.shard_ids:
            if instance.shard_count is None:
                raise bad("shard_ids", "needs discord.shard_count (the total number of shards)")
            wrong = [i for i in instance.shard_ids if not 0 <= i < instance.shard_count]
            if wrong:
                raise bad(
                    "shard_ids",
                    f"must be between 0 and {instance.shard_count - 1} (shard_count - 1),"
                    f" not {wrong[0]}",
                )
            if len(set(instance.shard_ids)) != len(instance.shard_ids):
                raise bad("shard_ids", "lists a shard twice")
    elif isinstance(instance, MetricsConfig) and not instance.host.strip():
        raise bad("host", "must be a host name or address, e.g. 127.0.0.1")
