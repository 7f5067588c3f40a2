"""Config files: partial files keep defaults, paths are relative to the file, errors name keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Config, ConfigError, all_sources, load_config, parse_every

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "newsbot.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_no_config_means_the_built_in_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSBOT_CONFIG", raising=False)
    config = load_config(None)
    assert config == Config()
    assert config.seeds_dir == Path("seeds")  # taken from the working directory
    assert config.database == Path("newsbot.sqlite3")


def test_the_shipped_default_file_documents_exactly_the_defaults() -> None:
    shipped = load_config(REPO / "config" / "default.yaml")
    # The two paths are left to their defaults (the working directory), so a copy of the file
    # placed anywhere behaves like no file at all.
    assert shipped.seeds_dir == Path("seeds")
    assert shipped.database == Path("newsbot.sqlite3")
    defaults = Config()
    for section in ("search", "digest", "discord", "metrics"):
        assert getattr(shipped, section) == getattr(defaults, section), section
    assert shipped.max_seed_bytes == defaults.max_seed_bytes
    assert shipped.log_level == defaults.log_level
    assert shipped.log_file == defaults.log_file
    for key in ("sources", "feeds_keep_days", "git_dir", "poll_concurrency", "feed_max_bytes",
                "feed_timeout_seconds", "watch_folders"):  # fmt: skip
        assert getattr(shipped, key) == getattr(defaults, key), key


def test_a_partial_file_changes_only_its_keys(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "search:\n  limit: 5\ndigest:\n  timezone: Asia/Tokyo\n"))
    assert config.search.limit == 5
    assert config.search.max_query_length == 200
    assert config.digest.timezone == "Asia/Tokyo"
    assert config.digest.time == "09:00"
    assert config.seeds_dir == Path("seeds")


def test_relative_paths_are_taken_from_the_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = load_config(write(folder, "seeds_dir: articles\ndatabase: ../data/news.db\n"))
    assert config.seeds_dir == folder.resolve() / "articles"
    assert config.database == folder.resolve() / "../data/news.db"


def test_snowflakes_and_mappings_are_read(tmp_path: Path) -> None:
    text = (
        "discord:\n  guild_ids: [123, '456']\n  moderator_role_ids: [7]\n"
        "digest:\n  channels: {123: 999}\n"
    )
    config = load_config(write(tmp_path, text))
    assert config.discord.guild_ids == (123, 456)
    assert config.digest.channels == {123: 999}


def test_the_environment_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSBOT_CONFIG", str(write(tmp_path, "search:\n  limit: 3\n")))
    assert load_config(None).search.limit == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour: blue\n", "unknown key 'colour'"),
        ("search:\n  limt: 5\n", "unknown key 'search.limt'"),
        ("search:\n  limit: many\n", "'search.limit' must be a whole number, not 'many'"),
        ("search:\n  limit: 99\n", "'search.limit' must be between 1 and 25"),
        ("search: 5\n", "'search' must be a mapping of keys"),
        ("digest:\n  enabled: yes please\n", "'digest.enabled' must be true or false"),
        ("digest:\n  time: '25:00'\n", "'digest.time' is invalid"),
        ("digest:\n  time: 18:30\n", "'digest.time' must be a string, not 1110 (put it in quotes"),
        ("digest:\n  timezone: Mars/Olympus\n", "'digest.timezone' is invalid"),
        ("discord:\n  guild_ids: 5\n", "'discord.guild_ids' must be a list"),
        ("discord:\n  api_base: nowhere\n", "'discord.api_base' must be a URL"),
        ("discord:\n  guild_ids: ['\u00b2']\n", "'discord.guild_ids[0]' must be a whole number"),
        ("digest:\n  grace_hours: .nan\n", "'digest.grace_hours' must be a finite number"),
        ("digest:\n  grace_hours: 1.0e+300\n", "'digest.grace_hours' must be between 0 and 24"),
        ("digest:\n  check_seconds: .inf\n", "'digest.check_seconds' must be a finite number"),
        ("search:\n  cooldown_seconds: .nan\n", "'search.cooldown_seconds' must be a finite"),
        ("metrics:\n  port: 70000\n", "'metrics.port' must be between 0 and 65535, not 70000"),
        (
            "max_seed_bytes: 9223372036854775807\n",
            "'max_seed_bytes' must be between 1 and 67108864, not 9223372036854775807",
        ),
        ("max_seed_bytes: 0\n", "'max_seed_bytes' must be between 1 and 67108864, not 0"),
        ("search:\n  max_query_length: 100000\n", "'search.max_query_length' must be between"),
        ("refresh_seconds: 0\n", "'refresh_seconds' must be between 0.1 and 3600, not 0"),
        ("discord:\n  shard_count: 0\n", "'discord.shard_count' must be between 1 and 65536"),
        (
            "discord:\n  guild_ids: [18446744073709551616]\n",
            "'discord.guild_ids' holds 18446744073709551616, which is not a Discord id",
        ),
        ("digest:\n  channels: {5: -1}\n", "'digest.channels' holds -1, which is not a Discord id"),
        (
            "discord:\n  shard_count: 2\n  shard_ids: [2]\n",
            "'discord.shard_ids' must be between 0 and 1 (shard_count - 1), not 2",
        ),
        ("discord:\n  shard_ids: [0]\n", "'discord.shard_ids' needs discord.shard_count"),
        ("database: ''\n", "'database' must be a path or a postgresql:// URL"),
        ("metrics:\n  port: nine\n", "'metrics.port' must be a whole number, not 'nine'"),
        ("metrics:\n  enabled: 1\n", "'metrics.enabled' must be true or false"),
        ("metrics:\n  host: ' '\n", "'metrics.host' must be a host name or address"),
        ("metrics:\n  path: /m\n", "unknown key 'metrics.path'"),
        ("log_file: ''\n", "'log_file' must be a path"),
        ("- a list\n", "a config file is a mapping of keys, not list"),
        ("search: [\n", "invalid YAML"),
    ],
)
def test_bad_files_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_metrics_and_log_file_keys_are_read_and_the_log_file_is_relative_to_the_file(
    tmp_path: Path,
) -> None:
    config = load_config(
        write(tmp_path, "log_file: logs/newsbot.log\nmetrics:\n  enabled: true\n  port: 0\n")
    )
    assert config.log_file == tmp_path.resolve() / "logs" / "newsbot.log"
    assert (config.metrics.enabled, config.metrics.host, config.metrics.port) == (
        True,
        "127.0.0.1",
        0,
    )
    assert Config().metrics.enabled is False
    assert Config().log_file is None


def test_a_postgresql_url_is_kept_whole_and_a_path_is_taken_from_the_files_folder(
    tmp_path: Path,
) -> None:
    url = "postgresql://newsbot:secret@db.example:5432/newsbot?sslmode=require"
    assert load_config(write(tmp_path, f"database: '{url}'\n")).database == url
    config = load_config(write(tmp_path, "database: data/news.sqlite3\n"))
    assert config.database == tmp_path / "data" / "news.sqlite3"


# --- sources ---------------------------------------------------------------------------------


def test_sources_are_read_with_their_defaults_and_relative_folders(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = load_config(
        write(
            folder,
            "sources:\n"
            "  - {name: world, feed: 'https://example.org/rss', topics: [World, ' ']}\n"
            "  - {name: notes, folder: notes, every: 90}\n"
            "  - {name: repo, git: 'https://example.org/r.git', path: /articles/, branch: dev,"
            " every: 2h}\n",
        )
    )
    world, notes, repo = config.sources
    assert (world.kind, world.every, world.topics) == ("feed", 900.0, ("World",))
    assert (notes.kind, notes.location, notes.every) == ("folder", str(folder / "notes"), 90.0)
    assert (repo.kind, repo.path, repo.branch, repo.every) == ("git", "articles", "dev", 7200.0)
    names = [s.name for s in all_sources(config)]
    assert names == ["seeds", "world", "notes", "repo"]  # seeds_dir is the folder "seeds"


def test_a_folder_source_that_is_seeds_dir_replaces_the_implicit_one(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "seeds_dir: s\nsources:\n  - {name: mine, folder: s, every: 1m}\n")
    )
    assert [(s.name, s.every) for s in all_sources(config)] == [("mine", 60.0)]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("- {feed: 'https://a.example/'}", "'sources[0].name' must be 1-40 letters"),
        ("- {name: 'a b', feed: 'https://a.example/'}", "'sources[0].name' must be"),
        ("- {name: a}", "'sources[0]' (a) needs exactly one of feed, folder or git"),
        ("- {name: a, feed: x, git: y}", "needs exactly one of feed, folder or git, not feed and"),
        ("- {name: a, feed: 'ftp://a.example/'}", "'sources[0].feed' must be an http:// or"),
        ("- {name: a, feed: 'https://a.example/', every: 0}", "'sources[0].every' must be between"),
        ("- {name: a, feed: 'https://a.example/', every: soon}", "'sources[0].every' must be"),
        ("- {name: a, folder: x, branch: main}", "'sources[0].branch' applies to git sources"),
        ("- {name: a, git: 'https://a.example/r', path: ../up}", "'sources[0].path' must be a"),
        ("- {name: a, feed: 'https://a.example/', colour: red}", "unknown key 'sources[0].colour'"),
        ("- {name: a, feed: 'https://a.example/', topics: 3}", "'sources[0].topics' must be a"),
        ("- name: a\n  feed: 'https://a.example/'\n- {name: A, folder: x}", "'sources[1].name'"),
        ("- {name: seeds, feed: 'https://a.example/'}", "is the seeds_dir folder's name"),
        ("- just-a-string", "'sources[0]' must be a mapping"),
    ],
)
def test_bad_sources_name_the_entry_and_the_key(tmp_path: Path, entry: str, message: str) -> None:
    path = write(tmp_path, "sources:\n" + "\n".join("  " + line for line in entry.splitlines()))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(45, 45.0), ("45", 45.0), ("30s", 30.0), ("15m", 900.0), ("1.5h", 5400.0), ("1d", 86400.0)],
)
def test_poll_intervals_read_as_a_person_writes_them(text: object, seconds: float) -> None:
    assert parse_every(text) == seconds
