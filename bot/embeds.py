"""Articles -> ``discord.Embed`` objects that Discord will accept, and their text renderings.

Pure layout: no I/O, no clock. Every builder guarantees Discord's limits (title 256,
description 4096, 25 fields, field name 256, field value 1024, footer 2048, author name 256,
6000 characters in total), because Discord answers an oversized embed with a 400 and the user
sees nothing at all. Lengths are counted the way discord.py's ``len(embed)`` counts them
(code points), see :func:`embed_size`.

Text safety: titles and excerpts come from third-party feeds. Text that Discord renders as
markdown (embed title, description, field names and values, message content) is escaped,
brackets included, and link text additionally holds no bracket at all (see
:func:`escape_link_text`), so a title such as ``Foo](http://evil)`` can neither end our masked
link early nor add one of its own. Author names and footers are *not* markdown in Discord, so
they are left unescaped (escaping them would show the backslashes).

Mentions: Discord never pings for mentions inside an embed, and the bot is created with
``allowed_mentions=AllowedMentions.none()``, so ``@everyone`` in a title is inert there; the
only text that goes into message *content* (:func:`no_hits_text`) escapes mentions anyway, so
it stays inert even if someone reuses it with default allowed mentions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import discord

from .articles import Article, RelatedLink
from .config import SourceConfig
from .digest import parse_timezone
from .sources import health, shown_location
from .store import Follow, SourceState

# --- Discord's limits (https://discord.com/developers/docs/resources/message#embed-object) ---
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_COUNT_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
AUTHOR_NAME_LIMIT = 256
EMBED_TOTAL_LIMIT = 6000  # across *all* embeds of one message
CONTENT_LIMIT = 2000

BRAND_COLOUR = discord.Colour(0x2F6FDE)

ELLIPSIS = "…"
# Long related titles are shortened so more of them fit in one 1024-character field.
RELATED_TITLE_MAX = 150
SOURCE_MAX = 60
DIGEST_TITLE_MAX = 200
# Field name for continuation fields: a zero-width space, so a list spread over several
# fields reads as one list (Discord rejects an empty field name).
_CONTINUATION = "\u200b"
# related_embed needs room for its title, footer and at least the "…and N more" line.
MIN_RELATED_BUDGET = 512

# English names, not strftime("%a"): the output must not depend on the host's locale.
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Private-use placeholders that carry brackets through discord.utils.escape_markdown untouched.
_OPEN, _CLOSE = "\ue000", "\ue001"
_URL_UNSAFE = {"(": "%28", ")": "%29", " ": "%20", "<": "%3C", ">": "%3E"}
_URL_UNSAFE_RE = re.compile(r"[()<>\s]")
# A host name with at least one dot: labels of letters, digits and inner hyphens.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+")


# --- text safety ----------------------------------------------------------------------------


def truncate(text: str, limit: int) -> str:
    """``text`` if it fits, else cut on a word boundary with "…" appended; never over ``limit``.

    A single word longer than the room (a URL-like title, say) is cut mid-word rather than
    dropped; so is a text whose last word boundary would throw away more than half the room.
    """
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    room = limit - len(ELLIPSIS)
    head = text[:room]
    if not text[room].isspace():  # the cut would fall inside a word: back up to its start
        boundary = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
        if boundary >= room // 2:
            head = head[:boundary]
    # Strip separators left at the cut so the result reads "word…" rather than "word, …".
    return head.rstrip(" \t\n,;:-–—·") + ELLIPSIS


def escape_link_text(text: str) -> str:
    """Make ``text`` safe as the text of a masked link ``[text](url)``.

    Markdown is escaped with ``discord.utils.escape_markdown``. Brackets are *replaced* by
    parentheses rather than backslash-escaped: Discord's link rule (simple-markdown's
    ``LINK_INSIDE``) matches the raw source before escapes are applied, so a title like
    ``](http://evil) [x`` would still end the text early and point the link at ``http://evil``,
    and a lone ``[`` breaks the whole link. With no bracket left, the only ``]`` is ours.
    ``://`` and ``<`` are escaped so a URL inside a title is not auto-linked inside our link.
    Whitespace runs (newlines included, which would end the link) become one space. Mentions
    are left alone: see the module notes.
    """
    text = " ".join(text.split()).replace("[", "(").replace("]", ")")
    text = discord.utils.escape_markdown(text, ignore_links=False)
    return text.replace("://", "\\://").replace("<", "\\<")


def safe_url(url: str) -> str:
    """``url`` made safe inside the ``(...)`` of a masked link.

    ``)`` would end the link early and whitespace, ``(``, ``<``, ``>`` confuse Discord's
    parser; all are percent-encoded, which leaves the address the browser opens unchanged.
    """
    return _URL_UNSAFE_RE.sub(lambda m: _URL_UNSAFE.get(m[0], f"%{ord(m[0]):02X}"), url.strip())


def embed_size(embed: discord.Embed) -> int:
    """Characters Discord counts towards the 6000 total: title, description, field names and
    values, footer text and author name (the same sum as discord.py's ``len(embed)``)."""
    total = len(embed.title or "") + len(embed.description or "")
    total += sum(len(f.name or "") + len(f.value or "") for f in embed.fields)
    total += len(embed.footer.text or "") + len(embed.author.name or "")
    return total


# --- builders -------------------------------------------------------------------------------


def article_embed(
    article: Article,
    *,
    position: int | None = None,
    total: int | None = None,
    also: Sequence[Article] = (),
    related_label: str = "Related",
) -> discord.Embed:
    """One article as Discord shows it: linked title, excerpt, source, image, date, related.

    ``position``/``total`` (1-based) add "2 of 7" to the footer when paging through hits.
    ``also``: the same story from other sources, linked by source name in one line.
    The "Related" field (``related_label``) lists as many related stories as fit in one
    field; the full list is :func:`related_embed`.
    """
    embed = discord.Embed(
        title=_fit(_title_text(article), TITLE_LIMIT, _markdown),
        url=article.url,
        colour=BRAND_COLOUR,
        timestamp=article.published,
    )
    _set_author(embed, article)
    embed.set_footer(text=_footer_text(article, position, total))
    if article.image_url:
        embed.set_image(url=article.image_url)

    if also:
        links = [
            f"[{_fit(_source(other), SOURCE_MAX, escape_link_text)}]({safe_url(other.url)})"
            for other in also
        ]
        line = ""
        for n, link in enumerate(links):
            more = f" {ELLIPSIS}and {len(links) - n} more"
            candidate = f"{line} · {link}" if line else link
            if len(candidate) + len(more) > FIELD_VALUE_LIMIT:
                line += more
                break
            line = candidate
        embed.add_field(name="Also covered by", value=line, inline=False)

    if article.related:
        packed = _pack_links(
            [_related_line(link, with_date=False) for link in article.related],
            more=lambda n: f"{ELLIPSIS}and {n} more related {_plural(n, 'story', 'stories')}",
            budget=EMBED_TOTAL_LIMIT - embed_size(embed),
            description_cap=0,
            field_name=related_label,
            max_fields=1,
        )
        _apply(embed, packed)

    if article.excerpt:
        # The excerpt gets whatever the rest left, so the 6000 total can never be exceeded;
        # the other parts are capped (256 + 256 + 2048 + 1031), so that is >= 2409 characters.
        room = min(DESCRIPTION_LIMIT, EMBED_TOTAL_LIMIT - embed_size(embed))
        embed.description = _fit(article.excerpt, room, _markdown) or None
    return embed


def related_embed(article: Article, *, budget: int = EMBED_TOTAL_LIMIT) -> discord.Embed:
    """The related stories of ``article`` as their own embed, with source and date per line.

    Lines fill the description, then continuation fields; whatever does not fit within
    ``budget`` (default: a whole message's 6000) is summarised as "…and N more". Pass
    ``budget=6000 - embed_size(other)`` to send it in one message with another embed.
    """
    if budget < MIN_RELATED_BUDGET:
        raise ValueError(f"budget must be at least {MIN_RELATED_BUDGET} characters")
    budget = min(budget, EMBED_TOTAL_LIMIT)
    embed = discord.Embed(
        title=_fit(f"Related to: {article.title}", TITLE_LIMIT, _markdown),
        url=article.url,
        colour=BRAND_COLOUR,
    )
    count = len(article.related)
    embed.set_footer(text=f"{count} related {_plural(count, 'story', 'stories')}")
    if not article.related:
        embed.description = "No related stories."
        return embed
    packed = _pack_links(
        [_related_line(link, with_date=True) for link in article.related],
        more=lambda n: f"{ELLIPSIS}and {n} more",
        budget=budget - embed_size(embed),
        description_cap=DESCRIPTION_LIMIT,
        field_name=_CONTINUATION,
        max_fields=FIELD_COUNT_LIMIT,
    )
    _apply(embed, packed)
    return embed


def digest_embed(
    articles: Sequence[Article], rest: int, day: date, *, tz_name: str
) -> discord.Embed:
    """The daily digest of ``day`` (a local date in ``tz_name``): one linked line per story.

    ``rest`` is how many stories were not selected (see ``digest.select_digest``); it is added
    to any that do not fit the embed and reported as "…and N more new stories". Times are
    shown in the guild's zone: the hour for stories from ``day``, the date for older ones.
    """
    if rest < 0:
        raise ValueError("rest must not be negative")
    zone = parse_timezone(tz_name)
    embed = discord.Embed(
        title=f"News digest — {_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]}",
        colour=BRAND_COLOUR,
    )
    embed.set_footer(text=truncate(f"Times in {tz_name.strip()}", FOOTER_LIMIT))
    if not articles and not rest:
        embed.description = "No new stories today."
        return embed

    lines = []
    for article in articles:
        local = article.published.astimezone(zone)
        when = f"{local:%H:%M}" if local.date() == day else _short_date(local.date())
        lines.append(
            _link_line(article.title, article.url, _source(article), when, DIGEST_TITLE_MAX)
        )
    packed = _pack_links(
        lines,
        more=lambda n: f"{ELLIPSIS}and {n} more new {_plural(n, 'story', 'stories')}",
        budget=EMBED_TOTAL_LIMIT - embed_size(embed),
        description_cap=DESCRIPTION_LIMIT,
        field_name=_CONTINUATION,
        max_fields=FIELD_COUNT_LIMIT,
        extra_dropped=rest,
    )
    _apply(embed, packed)
    return embed


def story_list_embed(title: str, articles: Sequence[Article], *, footer: str = "") -> discord.Embed:
    """A titled list of linked stories (a follow's burst, its preview), newest first as given:
    one line each, as many as fit Discord's limits, the rest counted."""
    embed = discord.Embed(title=_fit(title, TITLE_LIMIT, _markdown), colour=BRAND_COLOUR)
    if footer:
        embed.set_footer(text=truncate(footer, FOOTER_LIMIT))
    if not articles:
        embed.description = "No stories yet."
        return embed
    lines = [
        _link_line(a.title, a.url, _source(a), _short_date(a.published), DIGEST_TITLE_MAX)
        for a in articles
    ]
    _fill(embed, lines, more=lambda n: f"{ELLIPSIS}and {n} more {_plural(n, 'story', 'stories')}")
    return embed


def follows_embed(follows: Sequence[Follow], *, channel_names: dict[int, str]) -> discord.Embed:
    """/following: each follow with its id, what it follows, where, its last post or pause."""
    embed = discord.Embed(
        title="Follows in this server",
        colour=discord.Colour.orange() if any(f.paused for f in follows) else BRAND_COLOUR,
    )
    if not follows:
        embed.description = "None yet: `/follow query:` posts new matching stories to a channel."
        return embed
    lines = []
    for follow in follows:
        what = f"“{_escape(truncate(follow.query, 100), keep_urls=False)}”"
        if follow.topic:
            what += f" in {_escape(truncate(follow.topic, 60), keep_urls=False)}"
        if follow.source:
            what += f" from {_escape(truncate(follow.source, 60), keep_urls=False)}"
        where = channel_names.get(follow.channel_id, f"<#{follow.channel_id}>")
        ping = f", pings <@&{follow.role_id}>" if follow.role_id else ""
        if follow.paused:
            state = f"⏸ **paused**: {_escape(truncate(follow.paused, 200), keep_urls=False)}"
        elif follow.last_post_at:
            state = f"last post {_stamp(follow.last_post_at)}"
        else:
            state = "nothing posted yet"
        lines.append(f"`{follow.id}` {what} → {where}{ping} · {state}")
    _fill(embed, lines, more=lambda n: f"{ELLIPSIS}and {n} more")
    return embed


def _fill(embed: discord.Embed, lines: Sequence[str], *, more: Callable[[int], str]) -> None:
    """Whole ``lines`` in the description, then in untitled fields, within every limit; the
    lines that do not fit are counted by ``more``."""
    packed = _pack_links(
        lines,
        more=more,
        budget=EMBED_TOTAL_LIMIT - embed_size(embed),
        description_cap=DESCRIPTION_LIMIT,
        field_name=_CONTINUATION,
        max_fields=FIELD_COUNT_LIMIT,
    )
    _apply(embed, packed)


#: How /sources status marks each source's health.
_HEALTH_MARK = {"ok": "🟢", "new": "⚪", "failing": "🟠", "disabled": "🔴"}


def sources_embed(
    rows: Sequence[tuple[SourceConfig, SourceState]], *, polling: Sequence[str] = ()
) -> discord.Embed:
    """/sources status: each source with its health, last success, last error and next poll
    (Discord's own timestamps: every reader sees them in their time zone, relative)."""
    failing = sum(1 for _source, state in rows if health(state) in ("failing", "disabled"))
    embed = discord.Embed(
        title="News sources",
        description=(
            f"{len(rows)} {_plural(len(rows), 'source', 'sources')}"
            + (f", {failing} failing" if failing else ", all well")
        ),
        colour=discord.Colour.orange() if failing else BRAND_COLOUR,
    )
    fields = [_source_field(source, state, source.name in polling) for source, state in rows]
    overflow = len(fields) - (FIELD_COUNT_LIMIT - 1)
    if overflow > 0:  # keep the last field for a count of the rest
        fields = fields[: FIELD_COUNT_LIMIT - 1]
    for name, value in fields:
        if embed_size(embed) + len(name) + len(value) > EMBED_TOTAL_LIMIT - 100:
            overflow = max(overflow, 0) + 1
            continue
        embed.add_field(name=name, value=value, inline=False)
    if overflow > 0:
        embed.add_field(
            name=_CONTINUATION,
            value=f"{ELLIPSIS}and {overflow} more (`newsbot sources` lists them all)",
            inline=False,
        )
    return embed


def _source_field(source: SourceConfig, state: SourceState, polling: bool) -> tuple[str, str]:
    state_of = health(state)
    kind = "folder, watched" if source.kind == "folder" else source.kind
    name = truncate(f"{_HEALTH_MARK[state_of]} {source.name} ({kind})", FIELD_NAME_LIMIT)
    lines = [_escape(truncate(shown_location(source), 200), keep_urls=True)]
    if state.last_success is not None:
        lines.append(f"Last success {_stamp(state.last_success)}")
    elif state_of == "new":
        lines.append("Not polled yet")
    if state.outcome:
        lines.append(f"Last poll: {_escape(truncate(state.outcome, 200), keep_urls=False)}")
    if state.disabled:
        lines.append(f"**Disabled:** {_escape(truncate(state.disabled, 300), keep_urls=False)}")
    elif state.last_error:
        times = f" ({state.failures} in a row)" if state.failures > 1 else ""
        error = _escape(truncate(state.last_error, 300), keep_urls=False)
        lines.append(f"**Last error{times}:** {error}")
    if polling:
        lines.append("Polling now")
    elif state.next_poll is not None and not state.disabled:
        lines.append(f"Next poll {_stamp(state.next_poll)}")
    return name, truncate("\n".join(lines), FIELD_VALUE_LIMIT)


def _stamp(moment: datetime) -> str:
    """A Discord timestamp: '<t:1700000000:R>' reads "3 minutes ago" in every client."""
    return f"<t:{int(moment.timestamp())}:R>"


def no_hits_text(query: str, suggestions: Sequence[str], *, within: str | None = None) -> str:
    """The (ephemeral) reply when a search finds nothing, suggesting the closest titles.

    ``within`` describes the filters that left nothing ("from Wired", "in AI"); the suggestions
    are then the matches outside them, and the reply says so.

    This is message content, not an embed, so mentions are escaped as well as markdown: the
    query is typed by a user and titles come from feeds. Always <= 2000 characters.
    """
    shown_query = _content_safe(" ".join(query.split()), 100)
    scope = f" {_content_safe(within, 200)}" if within else ""
    head = f"No stories{scope} match “{shown_query}”."
    unique = [s for s in dict.fromkeys(" ".join(s.split()) for s in suggestions) if s]
    if not unique:
        return f"{head} Try fewer or different words."
    lines = [head, "Without that filter:" if within else "Closest titles:"]
    size = len("\n".join(lines))
    for title in unique:
        line = f"• {_content_safe(title, RELATED_TITLE_MAX)}"
        if size + 1 + len(line) > CONTENT_LIMIT:
            break
        lines.append(line)
        size += 1 + len(line)
    return "\n".join(lines)


def embed_as_text(embed: discord.Embed) -> str:
    """A plain-text rendering for a terminal: what the embed says, without markdown noise.

    Masked links become ``text <url>`` and the escapes added by this module are removed, so
    ``newsbot search`` shows the top hit the way Discord will, readably.
    """
    lines: list[str] = []
    if embed.title:
        lines.append(_plain(embed.title))
    if embed.url:
        lines.append(embed.url)
    meta = []
    if embed.author.name:
        meta.append(embed.author.name)
    if embed.timestamp:
        meta.append(f"{embed.timestamp.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    if meta:
        lines.append(" · ".join(meta))
    if embed.description:
        lines += ["", _plain(embed.description)]
    indent = ""
    for embed_field in embed.fields:
        name = _plain(embed_field.name or "").strip(_CONTINUATION).strip()
        if name:  # a continuation field (no visible name) reads as more of the list above
            lines += ["", f"{name}:"]
            indent = "  "
        lines += [indent + line for line in _plain(embed_field.value or "").splitlines()]
    if embed.image.url:
        lines += ["", f"Image: {embed.image.url}"]
    if embed.footer.text:
        lines += ["", embed.footer.text]
    return "\n".join(lines)


# --- packing lines into description + fields ------------------------------------------------


@dataclass
class _Packed:
    description: str | None
    fields: list[tuple[str, str]]  # (name, value)


@dataclass
class _Packer:
    """Places whole lines into containers (description, then fields) without ever cutting one.

    ``budget`` is what the containers may use in total, field names included, so the caller
    can keep the whole embed under 6000 whatever its title and footer took.
    """

    caps: list[int]
    overheads: list[int]  # characters a container costs when opened (its field name)
    budget: int
    boxes: list[list[str]] = field(default_factory=list)
    used: int = 0

    def place(self, line: str) -> bool:
        if self.boxes:
            cost = 1 + len(line)  # joined with "\n"
            index = len(self.boxes) - 1
            if len("\n".join(self.boxes[-1])) + cost <= self.caps[index] and self._affords(cost):
                self.boxes[-1].append(line)
                self.used += cost
                return True
        index = len(self.boxes)
        if index < len(self.caps) and len(line) <= self.caps[index]:
            cost = self.overheads[index] + len(line)
            if self._affords(cost):
                self.boxes.append([line])
                self.used += cost
                return True
        return False

    def pop(self) -> bool:
        if not self.boxes:
            return False
        line = self.boxes[-1].pop()
        if self.boxes[-1]:
            self.used -= 1 + len(line)
        else:
            self.used -= self.overheads[len(self.boxes) - 1] + len(line)
            self.boxes.pop()
        return True

    def _affords(self, cost: int) -> bool:
        return self.used + cost <= self.budget


def _pack_links(
    lines: Sequence[str],
    *,
    more: Callable[[int], str],
    budget: int,
    description_cap: int,
    field_name: str,
    max_fields: int,
    extra_dropped: int = 0,
) -> _Packed:
    """Fit ``lines`` in order; a line that does not fit is skipped whole (a shorter later one
    may still fit), and the skipped ones plus ``extra_dropped`` become a final "more" line.
    If even that line does not fit, shown lines are given back one by one until it does."""
    caps = ([description_cap] if description_cap > 0 else []) + [FIELD_VALUE_LIMIT] * max_fields
    overheads = ([0] if description_cap > 0 else []) + [len(field_name)] * max_fields
    packer = _Packer(caps=caps, overheads=overheads, budget=budget)
    placed = sum(packer.place(line) for line in lines)
    dropped = len(lines) - placed + extra_dropped
    while dropped and not packer.place(more(dropped)):
        if not packer.pop():
            break  # not even the summary fits: say nothing rather than exceed a limit
        dropped += 1

    boxes = ["\n".join(box) for box in packer.boxes]
    # Boxes open in order, so with a description the first box is it.
    description = boxes.pop(0) if description_cap > 0 and boxes else None
    return _Packed(description=description, fields=[(field_name, value) for value in boxes])


def _apply(embed: discord.Embed, packed: _Packed) -> None:
    embed.description = packed.description
    for name, value in packed.fields:
        embed.add_field(name=name, value=value, inline=False)


# --- small pieces ---------------------------------------------------------------------------


def _escape(text: str, *, keep_urls: bool) -> str:
    # Brackets travel through escape_markdown as placeholders: its own masked-link rule only
    # escapes the first "[" of a greedy "[.+](.+)" match, which leaves a second link live.
    text = text.replace(_OPEN, "").replace(_CLOSE, "")
    text = text.replace("[", _OPEN).replace("]", _CLOSE)
    text = discord.utils.escape_markdown(text, ignore_links=keep_urls)
    return text.replace(_OPEN, "\\[").replace(_CLOSE, "\\]")


def _markdown(text: str) -> str:
    """Escape prose for a markdown-rendered place, leaving URLs in it intact and clickable."""
    return _escape(text, keep_urls=True)


def _fit(text: str, limit: int, escape: Callable[[str], str]) -> str:
    """``escape(text)`` cut to ``limit``: the *raw* text is truncated, then escaped, so a cut
    never separates a backslash from the character it escapes."""
    if limit <= 0:
        return ""
    escaped = escape(text)
    room = limit
    while len(escaped) > limit:
        escaped = escape(truncate(text, room))
        room -= max(1, len(escaped) - limit)
    return escaped


def _link_line(title: str, url: str, source: str, when: str, title_max: int) -> str:
    """``[title](url) — source · when``: the link is always whole; only the title is shortened."""
    line = f"[{_fit(title, title_max, escape_link_text)}]({safe_url(url)})"
    tail = " · ".join(part for part in (_fit(source, SOURCE_MAX, _markdown), when) if part)
    return f"{line} — {tail}" if tail else line


def _related_line(link: RelatedLink, *, with_date: bool) -> str:
    source = link.provider or link.provider_domain or _domain(link.url)
    when = _short_date(link.published.date()) if with_date and link.published else ""
    return _link_line(link.title, link.url, source, when, RELATED_TITLE_MAX)


def _title_text(article: Article) -> str:
    return f"▶ {article.title}" if article.kind == "video" else article.title


def _set_author(embed: discord.Embed, article: Article) -> None:
    name = article.provider or article.provider_domain
    if not name:
        return
    # The domain comes from the seed file as written: Discord refuses the whole embed if the
    # author URL is not a URL, so only a plain host name becomes one.
    domain = article.provider_domain
    embed.set_author(
        name=truncate(name, AUTHOR_NAME_LIMIT),
        url=f"https://{domain}" if _HOST_NAME.fullmatch(domain) else None,
        icon_url=article.provider_icon,
    )


def _footer_text(article: Article, position: int | None, total: int | None) -> str:
    parts = [article.provider_domain or _domain(article.url)]
    if article.topics:
        parts.append(", ".join(article.topics))
    page = f"{position} of {total}" if position is not None and total is not None else ""
    # The page number is the part a reader needs; the topics give way to it.
    room = FOOTER_LIMIT - (len(page) + len(" · ") if page else 0)
    text = truncate(" · ".join(p for p in parts if p), room)
    return " · ".join(p for p in (text, page) if p)


def _source(article: Article) -> str:
    return article.provider or article.provider_domain or _domain(article.url)


def _domain(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")


def _short_date(day: date | datetime) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _content_safe(text: str, limit: int) -> str:
    # Mentions are escaped inside the fitted function: the zero-width spaces count too.
    return _fit(text, limit, lambda t: discord.utils.escape_mentions(_markdown(t)))


# A masked link (text may hold escaped brackets) or one escaped character.
_RENDER_RE = re.compile(r"\[((?:\\.|[^\\\]])*)\]\((\S+?)\)|\\([^0-9A-Za-z\s])")
_UNESCAPE_RE = re.compile(r"\\([^0-9A-Za-z\s])")


def _plain(text: str) -> str:
    def render(match: re.Match[str]) -> str:
        if match[3] is not None:
            return match[3]
        text = _UNESCAPE_RE.sub(r"\1", match[1])
        return f"{text} <{match[2]}>"

    return _RENDER_RE.sub(render, text)
