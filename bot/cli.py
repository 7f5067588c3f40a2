"""The ``newsbot`` command line: the bot's work offline, and ``run`` to start the bot.

    newsbot search "facial recognition"     # loads seeds/ into newsbot.sqlite3 on first use
    newsbot load [PATH ...]                 # (re)load seeds, incrementally, and report
    newsbot check [PATH ...]                # validate seeds, write nothing
    newsbot digest                          # preview the next daily digest
    newsbot run                             # start the Discord bot (DISCORD_TOKEN)
    newsbot cluster --processes N           # the bot as N processes, shards split between them
    newsbot migrate --to postgresql://...   # copy the database to PostgreSQL
    newsbot sync [--global]                 # publish the slash commands
    newsbot backup FILE [--force]           # a consistent copy of the live database
    newsbot sources [poll [NAME ...]]       # the live sources' state; poll them now

Exit status: 0 done, 1 some seed file was rejected (or a source failed its poll), 2 a usage
or setup error (one line on stderr, never a traceback), 141 stdout was closed early
(``| head``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import logging.handlers
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from . import __version__
from .articles import Article
from .cluster import child_index, in_cluster
from .config import MAX_SHARDS, Config, ConfigError, database_target, load_config
from .loader import LoadReport, StaleReloadError
from .memory import map_large_allocations
from .store import StoreError, is_database_url

if TYPE_CHECKING:
    from .search import Hit

log = logging.getLogger(__name__)

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process killed by SIGPIPE


class UsageError(Exception):
    """A mistake of the user's or the setup's: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line is easier to read in a script's log.
        # The prefix is always "newsbot: error:" (a sub-command's prog is "newsbot search"), so
        # scripts can grep one pattern; the hint names the sub-command's own --help.
        self.exit(EXIT_USAGE, f"newsbot: error: {message} (see {self.prog} --help)\n")


# The help's epilogs: what a PATH defaults to, the environment, the exit codes, an example.
# Written out (RawDescriptionHelpFormatter keeps the layout) because operators read --help
# before they read the README.
_PATHS = """\
paths (--config and --db go before COMMAND):
  --config PATH   default: $NEWSBOT_CONFIG, else the built-in defaults (config/default.yaml
                  lists every key); relative paths in the file are taken from its folder
  --db TARGET     a SQLite file or a postgresql:// URL; default: the config's `database`,
                  else ./newsbot.sqlite3 (created on use)
  seeds           default: the config's `seeds_dir`, else ./seeds"""
_ENVIRONMENT = """\
environment:
  NEWSBOT_CONFIG  the config file when --config is not given
  DISCORD_TOKEN   the bot token (run, cluster, sync); if unset, read from a
                  DISCORD_TOKEN=... line in ./.env; never read from the config file"""
_EXIT_CODES = """\
exit status:
  0    done
  1    a seed file or path was rejected (the others were loaded), or a source's poll failed
  2    a usage or setup error: one line on stderr (bad option, missing config, no token,
       unreadable database, Discord out of reach)
  130  interrupted (Ctrl-C)
  141  the output was closed early (e.g. `| head`)"""


def _epilog(*blocks: str, example: str) -> str:
    return "\n\n".join([*blocks, _ENVIRONMENT, _EXIT_CODES, f"example:\n  {example}"])


def _command(
    commands: Any, name: str, help: str, *, paths: str = _PATHS, example: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=_epilog(paths, example=example),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="newsbot",
        description="Search a curated news collection, in Discord.",
        epilog=_epilog(_PATHS, example='newsbot search "facial recognition"'),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"newsbot {__version__}")
    parser.add_argument(
        "--config", metavar="PATH", help="YAML config file (default: $NEWSBOT_CONFIG, built in)"
    )
    parser.add_argument(
        "--db",
        metavar="TARGET",
        help="SQLite file or postgresql:// URL (default: the config's, ./newsbot.sqlite3)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="newsbot's debug log and every report line; -vv: every library's debug log too",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    load = _command(
        commands,
        "load",
        "load seed files or folders into the database",
        example="newsbot load seeds/2020-06-11-amazon.md more-seeds/",
    )
    load.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH", help="files or folders (default: seeds)"
    )
    check = _command(
        commands,
        "check",
        "validate seed files and say what a load would do; write nothing",
        example="newsbot check seeds/",
    )
    check.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH", help="files or folders (default: seeds)"
    )

    search = _command(
        commands,
        "search",
        "search the stored articles",
        example='newsbot search --json --limit 3 --topic AI "facial recognition"',
    )
    search.add_argument("query", nargs="?", help="what to look for")
    search.add_argument("--limit", type=_positive_int, help="how many hits (default: config)")
    search.add_argument("--topic", help="only articles with this topic")
    search.add_argument("--provider", help="only articles from this source (name or domain)")
    search.add_argument("--since", type=_iso_date, help="only articles published since (ISO)")
    search.add_argument("--json", action="store_true", help="print JSON")
    search.add_argument("--stdin", action="store_true", help="one query per input line")

    digest = _command(
        commands,
        "digest",
        "preview the next daily digest",
        example="newsbot digest --guild 123456789012345678",
    )
    digest.add_argument("--guild", type=int, help="the guild whose last digest counts")
    digest.add_argument("--since", type=_iso_date, help="stories new since (default: last)")
    digest.add_argument("--json", action="store_true", help="print JSON")

    run = _command(
        commands,
        "run",
        "start the Discord bot (token from DISCORD_TOKEN)",
        example="DISCORD_TOKEN=... newsbot run --shard-ids 0-3 --shard-count 8",
    )
    run.add_argument(
        "--shard-ids",
        type=_shard_ids,
        metavar="IDS",
        help="run only these shards, e.g. 0-3 or 0,2,5 (needs --shard-count; default: all)",
    )
    run.add_argument(
        "--shard-count", type=_positive_int, metavar="K", help="the total number of shards"
    )
    cluster = _command(
        commands,
        "cluster",
        "run the bot as N processes, each with a contiguous range of the shards",
        example="DISCORD_TOKEN=... newsbot --config newsbot.yaml cluster --processes 4",
    )
    cluster.add_argument(
        "--processes", type=_positive_int, required=True, metavar="N", help="bot processes"
    )
    cluster.add_argument(
        "--shard-count",
        type=_positive_int,
        metavar="K",
        help="total shards (default: discord.shard_count, else what Discord recommends)",
    )
    migrate = _command(
        commands,
        "migrate",
        "copy the database (articles, settings, digest log, saved searches) to another",
        example="newsbot migrate --to postgresql://newsbot:secret@db.example/newsbot",
    )
    migrate.add_argument(
        "--to", required=True, metavar="TARGET", help="a postgresql:// URL (or a SQLite file)"
    )
    migrate.add_argument(
        "--replace", action="store_true", help="empty the target first if it holds data"
    )
    sync = _command(
        commands,
        "sync",
        "publish the slash commands to Discord",
        example="newsbot --config newsbot.yaml sync --global",
    )
    sync.add_argument("--global", dest="globally", action="store_true", help="to every guild")

    backup = _command(
        commands,
        "backup",
        "write a consistent copy of the database, safe while the bot runs",
        example="newsbot --config newsbot.yaml backup backups/newsbot-$(date +%F).sqlite3",
    )
    backup.add_argument("file", type=Path, metavar="FILE", help="where to write the copy")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    sources = _command(
        commands,
        "sources",
        "list the live sources (feeds, folders, git) and their state, or poll them now",
        example="newsbot --config newsbot.yaml sources poll world-news",
    )
    sources.add_argument(
        "action", nargs="?", choices=("list", "poll"), default="list", help="default: list"
    )
    sources.add_argument("names", nargs="*", metavar="NAME", help="sources to poll (default: all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    map_large_allocations()  # before the index exists: see bot.memory
    try:
        config = _for_cluster_child(load_config(args.config))
        if args.db is not None:
            if not args.db.strip():
                raise UsageError("--db needs a database file or a postgresql:// URL, not ''")
            config = dataclasses.replace(config, database=database_target(args.db))
        _setup_logging(config, verbose=args.verbose, quiet=args.command not in ("run", "cluster"))
        # A cluster's child logs to stderr: its launcher relays that into the one log file.
        logs_itself = args.command in ("run", "cluster") and not in_cluster()
        if logs_itself and config.log_file is not None:
            _log_to_file(config.log_file)
        status = _dispatch(args, config)
        sys.stdout.flush()  # inside the try: a closed pipe must fail here, not at exit
        return status
    except (UsageError, ConfigError) as exc:
        print(f"newsbot: error: {exc}", file=sys.stderr)
        from .runner import setup_error_status

        return setup_error_status()
    except (StoreError, StaleReloadError) as exc:
        print(f"newsbot: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`newsbot search ... | head`): stop quietly, as Unix tools do.
        # stdout now points at /dev/null so the interpreter's flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _dispatch(args: argparse.Namespace, config: Config) -> int:
    if args.command == "run":
        from .runner import run_bot

        return run_bot(_with_shards(config, args.shard_ids, args.shard_count))
    if args.command == "cluster":
        from .cluster import cluster_command
        from .runner import NO_TOKEN, read_token

        token = read_token()
        if token is None:
            raise UsageError(NO_TOKEN)
        return cluster_command(
            config,
            processes=args.processes,
            shard_count=args.shard_count,
            base_argv=_global_argv(args, config),
            token=token,
        )
    if args.command == "migrate":
        return asyncio.run(_migrate(config, args.to, replace=args.replace))
    if args.command == "sync":
        from .runner import sync_commands

        return sync_commands(config, globally=args.globally)
    if args.command == "backup":
        return _backup(config, args.file, force=args.force)
    if args.command == "check":
        report = _check(config, args.paths)
        print(format_report(report, verbose=args.verbose, summary=check_summary(report)))
        return EXIT_OK if report.ok else EXIT_REJECTED
    if args.command == "search":
        # Before the library opens: a usage error must not create the database or load seeds.
        _check_query(args)
    return asyncio.run(_async_dispatch(args, config))


async def _async_dispatch(args: argparse.Namespace, config: Config) -> int:
    if (
        args.command in ("search", "digest")
        and not is_database_url(config.database)
        and not (Path(config.database).exists() or Path(config.seeds_dir).is_dir())
    ):
        # Most likely run from another folder: say so instead of creating an empty database.
        raise UsageError(
            f"no database at {config.database} and no seeds folder at {config.seeds_dir}: "
            "run newsbot in the project folder, or pass --config (or --db)"
        )
    async with _open_library(args, config) as library:
        if args.command == "load":
            progress = _ProgressBar(sys.stderr) if sys.stderr.isatty() else None
            report = await library.reload(args.paths or None, progress=progress)
            if progress:
                progress.done()
            if report.articles_changed:
                # After a large load, one index for every bot to load, not one build each.
                await library.save_index_for_next_start()
            return _print_report(report, out=sys.stdout, verbose=args.verbose)
        if args.command == "search":
            await library.ensure_loaded()
            return await _search(library, args, config)
        if args.command == "digest":
            await library.ensure_loaded()
            return await _digest(library, args, config)
        if args.command == "sources":
            return await _sources(library, args, config)
    raise UsageError(f"unknown command {args.command!r}")  # pragma: no cover


# --- commands -------------------------------------------------------------------------------


def _for_cluster_child(config: Config) -> Config:
    """A cluster's child N serves its metrics on the configured port + N (0 stays any port)."""
    index = child_index()
    if index is None or not config.metrics.enabled or config.metrics.port == 0:
        return config
    metrics = dataclasses.replace(config.metrics, port=config.metrics.port + index)
    return dataclasses.replace(config, metrics=metrics)


@asynccontextmanager
async def _open_library(args: argparse.Namespace, config: Config) -> AsyncIterator[Any]:
    """The library for a command: read-only where that is all the command does.

    ``search`` and ``digest`` only read an existing, loaded database: opened read-only, they
    work on a full disk or a file this user may not write. A first use (nothing loaded yet)
    or a schema to migrate needs writing, and takes the ordinary path.
    """
    from .library import Library

    searchable = args.command == "search"
    if args.command == "sources":
        # Polls write articles; no index is needed for that (the bots follow the database).
        async with Library.open(config, searchable=False) as library:
            yield library
        return
    async with contextlib.AsyncExitStack() as stack:
        if args.command in ("search", "digest") and not is_database_url(config.database):
            try:
                library = await stack.enter_async_context(
                    Library.open(config, searchable=searchable, readonly=True)
                )
            except StoreError as exc:
                log.debug("read-only open refused (%s); opening for writing", exc)
            else:
                if await library.store.count_articles() > 0:
                    yield library
                    return
                await stack.aclose()
        role = "load" if args.command == "load" else None
        yield await stack.enter_async_context(
            Library.open(config, searchable=searchable, role=role)
        )


def _with_shards(config: Config, shard_ids: list[int] | None, shard_count: int | None) -> Config:
    """The config with ``run``'s --shard-ids and --shard-count applied (and checked)."""
    if shard_ids is None and shard_count is None:
        return config
    count = shard_count or config.discord.shard_count
    if shard_ids is not None and count is None:
        raise UsageError("--shard-ids needs --shard-count (the total number of shards)")
    # --shard-count alone keeps the config's shard_ids (a host's own share of the shards).
    ids = tuple(shard_ids) if shard_ids is not None else config.discord.shard_ids
    if count is not None and any(i >= count for i in ids):
        given = "--shard-ids" if shard_ids is not None else "discord.shard_ids"
        raise UsageError(f"{given} must be below the shard count ({count}), not {max(ids)}")
    discord = dataclasses.replace(config.discord, shard_count=count, shard_ids=ids)
    return dataclasses.replace(config, discord=discord)


def _global_argv(args: argparse.Namespace, config: Config) -> list[str]:
    """The global options a child process needs to see the same config and database."""
    argv: list[str] = []
    if args.config:
        argv += ["--config", str(Path(args.config).resolve())]
    if args.db is not None:
        database = config.database
        argv += ["--db", database if isinstance(database, str) else str(database.resolve())]
    argv += ["-v"] * args.verbose
    return argv


async def _migrate(config: Config, target: str, *, replace: bool) -> int:
    """Copy the configured database into ``target``, whole, in one transaction there."""
    from .store import Store

    destination = database_target(target)
    if str(destination) == str(config.database):
        raise UsageError("--to names the database being copied")
    if not is_database_url(config.database) and not Path(config.database).exists():
        raise UsageError(f"no database at {config.database} to copy")
    async with await Store.open(config.database) as source, await Store.open(destination) as sink:
        held = await sink.holds_data()
        if held and not replace:
            raise UsageError(
                f"{sink.label} already holds data ({', '.join(held)}); "
                "pass --replace to empty it first"
            )
        counts = await sink.import_rows(
            source.export_rows(), replace=replace, now=datetime.now(UTC)
        )
    summary = ", ".join(f"{table} {n}" for table, n in counts.items())
    print(f"copied {source.label} to {sink.label}: {summary}")
    return EXIT_OK


def _check(config: Config, paths: list[Path]) -> LoadReport:
    from .loader import check_seeds

    return check_seeds(paths or [config.seeds_dir], max_bytes=config.max_seed_bytes)


def _backup(config: Config, target: Path, *, force: bool) -> int:
    from .backup import BackupError, backup_database

    try:
        size = backup_database(config.database, target, force=force)
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    print(f"backed up {config.database} to {target} ({size:,} bytes)")
    return EXIT_OK


def _check_query(args: argparse.Namespace) -> None:
    if args.stdin:
        if args.query is not None:
            raise UsageError("give a QUERY or --stdin, not both")
    elif not args.query or not args.query.strip():
        raise UsageError("search needs a QUERY (or --stdin)")


async def _search(library: Any, args: argparse.Namespace, config: Config) -> int:
    limit = args.limit or config.search.limit
    options = {"limit": limit, "topic": args.topic, "provider": args.provider, "since": args.since}
    if args.stdin:
        for line in sys.stdin:
            hits = library.index.search(line.strip(), **options)
            if args.json:
                found = await library.store.articles_by_url([h.url for h in hits])
                print(json.dumps(_hits_json(hits, found), ensure_ascii=False), flush=True)
            else:
                print(" | ".join(h.title for h in hits) or "(no hits)", flush=True)
        return EXIT_OK
    hits = library.index.search(args.query, **options)
    found = await library.store.articles_by_url([h.url for h in hits])
    if args.json:
        print(json.dumps(_hits_json(hits, found), ensure_ascii=False, indent=2))
        return EXIT_OK
    print(_render_hits(library, args.query, [found[h.url] for h in hits if h.url in found]))
    return EXIT_OK


def _render_hits(library: Any, query: str, articles: list[Article]) -> str:
    from .embeds import article_embed, embed_as_text

    if not articles:
        suggestions = library.index.suggestions(query)
        lines = [f"No article matches {query!r}."]
        if suggestions:
            lines.append("Closest titles:")
            lines += [f"  - {hit.title}" for hit in suggestions]
        return "\n".join(lines)
    parts = [embed_as_text(article_embed(articles[0], position=1, total=len(articles)))]
    if len(articles) > 1:
        parts.append("")
        parts.append("More results:")
        for number, article in enumerate(articles[1:], start=2):
            source = article.provider or article.provider_domain
            parts.append(f"{number:>3}. {article.title} ({source}, {article.published:%Y-%m-%d})")
            parts.append(f"     {article.url}")
    return "\n".join(parts)


async def _sources(library: Any, args: argparse.Namespace, config: Config) -> int:
    from .sources import SourcePoller, status_lines

    async with SourcePoller(library, config) as poller:
        if args.action == "list":
            if args.names:
                raise UsageError("`newsbot sources` lists every source; to poll some: sources poll")
            rows = await poller.states()
            lines = status_lines(rows, datetime.now(UTC), watched=config.watch_folders)
            print("\n".join(lines))
            return EXIT_OK
        unknown = poller.unknown(args.names)
        if unknown:
            known = ", ".join(poller.sources) or "none"
            raise UsageError(f"no source named {unknown[0]!r} in the config (sources: {known})")
        results = await poller.poll_many(args.names)
    for result in results:
        print(f"{result.name}: {result.summary()}")
        for note in result.notes:
            print(f"  note: {note}")
    return EXIT_REJECTED if any(r.failed for r in results) else EXIT_OK


async def _digest(library: Any, args: argparse.Namespace, config: Config) -> int:
    from .digests import DigestService
    from .embeds import digest_embed, embed_as_text

    # As the bot would: since the guild's last digest (or the last day for a first one), dated
    # in the guild's time zone.
    service = DigestService(
        library.store, config.digest, lambda: datetime.now(UTC), library.collapse_stories
    )
    content = await service.preview(args.guild, since=args.since)
    since = content.since
    if args.json:
        payload = {"since": since.isoformat(), "rest": content.rest}
        payload["stories"] = [_article_json(a) for a in content.stories]
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not content.stories:
        print(f"Nothing new for the digest since {since.astimezone(UTC):%Y-%m-%d %H:%M} UTC.")
        return EXIT_OK
    embed = digest_embed(content.stories, content.rest, content.day, tz_name=content.timezone)
    print(embed_as_text(embed))
    return EXIT_OK


# --- output ---------------------------------------------------------------------------------


def _print_report(report: LoadReport, *, out: TextIO, verbose: bool = False) -> int:
    print(format_report(report, verbose=verbose), file=out)
    return EXIT_OK if report.ok else EXIT_REJECTED


def check_summary(report: LoadReport) -> str:
    """``newsbot check``'s first line: what a load would do, since check itself writes nothing.

    check compares with an empty store, not the database, so it can only say which files
    would load, not which would be new or changed.
    """
    text = f"{len(report.added)} would load, {len(report.rejected)} rejected"
    if report.duplicates:
        text += f", {len(report.duplicates)} duplicates"
    return f"{text} (nothing written)"


def format_report(report: LoadReport, *, verbose: bool = False, summary: str | None = None) -> str:
    """The summary line, then rejections, duplicates and warnings, most important first.

    Rejections matter most (a file did not load), so more of them are listed; real corpora
    carry hundreds of harmless warnings (related videos without a URL), so only a few are
    shown unless ``verbose``.
    """
    lines = [summary or report.summary()]
    for label, items, shown in (
        ("rejected", [r for _, r in report.rejected], 50),
        ("duplicate", report.duplicates, 10),
        ("warning", report.warnings, 10),
    ):
        limit = len(items) if verbose else shown
        for item in items[:limit]:
            lines.append(f"  {label}: {item}")
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more {label} lines (-v shows all)")
    return "\n".join(lines)


def _article_json(article: Any) -> dict[str, Any]:
    return {
        "url": article.url,
        "title": article.title,
        "provider": article.provider,
        "domain": article.provider_domain,
        "published": article.published.isoformat(),
        "topics": list(article.topics),
        "quality": article.quality,
    }


def _hits_json(hits: list[Hit], found: dict[str, Article]) -> list[dict[str, Any]]:
    return [
        {**_article_json(article), "score": hit.score, "excerpt": article.excerpt}
        for hit in hits
        if (article := found.get(hit.url)) is not None
    ]


class _ProgressBar:
    """A one-line progress bar on a terminal (stderr), redrawn at most every 1%."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 if total == 0 else done * 100 // total
        if percent == self._shown:
            return
        self._shown = percent
        filled = self._width * percent // 100
        bar = "#" * filled + "-" * (self._width - filled)
        self._stream.write(f"\rloading [{bar}] {done}/{total}")
        self._stream.flush()

    def done(self) -> None:
        if self._shown >= 0:
            self._stream.write("\n")
            self._stream.flush()


# --- helpers --------------------------------------------------------------------------------


def _setup_logging(config: Config, *, verbose: int, quiet: bool) -> None:
    level = getattr(logging, config.log_level.upper())
    # -v is newsbot's own debug log (the `bot` logger tree); -vv everyone's. aiosqlite alone
    # logs two DEBUG lines per SQL statement, which would bury the report.
    root_level = logging.DEBUG if verbose >= 2 else level
    # A cluster's child leaves the time out: its launcher logs each relayed line with its own.
    timed = "" if in_cluster() else "%(asctime)s "
    logging.basicConfig(level=root_level, format=timed + "%(levelname)s %(name)s: %(message)s")
    if verbose:
        logging.getLogger("bot").setLevel(logging.DEBUG)
    # The offline commands' output is their report; library chatter below WARNING is noise.
    if quiet and not verbose:
        for name in ("bot", "discord"):  # `sync` logs in to Discord: its chatter too
            logging.getLogger(name).setLevel(max(level, logging.WARNING))


def _shard_ids(text: str) -> list[int]:
    """'0-3' -> [0, 1, 2, 3]; '0,2,5' -> [0, 2, 5]; ranges and lists may mix."""
    ids: list[int] = []
    try:
        for part in text.split(","):
            first, dash, last = part.strip().partition("-")
            low = int(first)
            high = int(last) if dash else low
            if low < 0 or high < low or high >= MAX_SHARDS:
                raise ValueError
            ids.extend(range(low, high + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of shard ids such as 0-3 or 0,2,5 (each below {MAX_SHARDS})"
        ) from None
    if len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"{text!r} names a shard twice")
    return ids


# log_file rotation: at most 60 MiB of logs on disk, the last few days of a busy bot.
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5


def _log_to_file(path: Path) -> None:
    """Send the log to ``path`` (the config's log_file), rotated, instead of stderr."""
    try:
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
    except OSError as exc:
        raise UsageError(f"log_file {path}: cannot open ({exc.strerror or exc})") from None
    root = logging.getLogger()
    handler.setFormatter(root.handlers[0].formatter if root.handlers else None)
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _iso_date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            value = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
