"""``/news``: search, page through the hits, show related stories.

The buttons outlive the bot process: their ``custom_id`` carries the saved search's id and the
page (``discord.ui.DynamicItem``), and the search itself (who asked, which URLs) is in SQLite,
so a click after a restart finds everything it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from ..articles import Article, RelatedLink
from ..embeds import article_embed, no_hits_text, related_embed, truncate
from ..errors import UserError, guarded
from ..foreground import FOREGROUND
from ..search import SearchIndex
from ..store import StoreError, new_search_id
from ..tokens import fold

if TYPE_CHECKING:
    from ..client import NewsBot
    from ..store import SavedSearch

log = logging.getLogger(__name__)

AUTOCOMPLETE_LIMIT = 25
# How long a button waits for its answer's search to be written (normally milliseconds).
SAVE_WAIT_SECONDS = 10.0
# Other sources of the same story named under an article.
MAX_ALSO = 8
# Similar stories shown for an article whose seed lists no related ones.
MAX_SIMILAR = 5
CHOICE_LIMIT = 100  # Discord's limit for a choice's name and value


def _cooldown(interaction: discord.Interaction) -> app_commands.Cooldown | None:
    seconds = interaction.client.config.search.cooldown_seconds  # type: ignore[attr-defined]
    return app_commands.Cooldown(1, seconds) if seconds > 0 else None


class NewsCog(commands.Cog):
    def __init__(self, bot: NewsBot) -> None:
        self.bot = bot
        self._unsaved_warned = False
        # Answers whose saved search is still being written: a button of theirs waits for it.
        self.saving: dict[int, asyncio.Task[None]] = {}

    @app_commands.command(name="news", description="Search the news collection")
    @app_commands.describe(
        query="Words from a headline or a summary; typos are fine",
        topic="Only stories with this topic",
        source="Only stories from this source (name or domain)",
    )
    @app_commands.checks.dynamic_cooldown(_cooldown)
    async def news(
        self,
        interaction: discord.Interaction,
        query: str,
        topic: str | None = None,
        source: str | None = None,
    ) -> None:
        with FOREGROUND.reply():  # a change being applied in a thread lets this go first
            await self._news(interaction, query, topic, source)

    async def _news(
        self, interaction: discord.Interaction, query: str, topic: str | None, source: str | None
    ) -> None:
        config = self.bot.config.search
        if len(query) > config.max_query_length:
            raise UserError(
                f"That query is {len(query)} characters long; "
                f"please keep it under {config.max_query_length}."
            )
        if not query.strip():
            raise UserError("Tell me what to look for, e.g. `/news facial recognition`.")
        index = self.bot.library.index  # one corpus for the whole answer, even mid-reload
        if topic is not None:
            resolved = resolve_topic(topic, index.topics())
            if resolved is None:
                raise UserError(
                    f"There is no topic called {truncate(topic, 80)!r}: pick one from the list."
                )
            topic = resolved
        hits = index.search(query, limit=config.limit, topic=topic, provider=source)
        # The index holds what ranking needs; what the reply shows comes from the database.
        # A hit a concurrent reload removed meanwhile is dropped, not shown half-known.
        articles = await self.bot.library.store.articles_by_url([h.url for h in hits])
        urls = [hit.url for hit in hits if hit.url in articles]
        if not urls:
            text = await asyncio.to_thread(self._no_hits, index, query, topic, source)
            await interaction.response.send_message(text, ephemeral=True)
            return
        first = await _presented(self.bot.library, articles[urls[0]])
        embed = first.embed(position=1, total=len(urls))
        # The answer goes out first and its search is saved after: a reply never waits for
        # the database's write lock (another process's reload may hold it for a while). Its
        # buttons carry the id chosen here; one pressed before the save lands waits for it.
        search_id = new_search_id()
        await interaction.response.send_message(
            embed=embed,
            view=results_view(search_id, 0, len(urls), has_related=bool(first.article.related)),
        )
        saving = asyncio.create_task(self._save(interaction, search_id, query, urls))
        self.saving[search_id] = saving
        saving.add_done_callback(lambda _task: self.saving.pop(search_id, None))

    async def cog_unload(self) -> None:
        # Saves under way finish before the bot closes its database.
        if self.saving:
            await asyncio.wait(list(self.saving.values()), timeout=SAVE_WAIT_SECONDS)

    async def _save(
        self, interaction: discord.Interaction, search_id: int, query: str, urls: list[str]
    ) -> None:
        try:
            await self.bot.library.store.save_search(
                interaction.user.id, query, urls, self.bot.clock(), search_id=search_id
            )
        except StoreError as exc:
            # The search ran from memory; only its buttons need the database. A full disk or
            # a read-only file costs the buttons, never the answer.
            self._warn_unsaved(exc)
            try:
                await interaction.edit_original_response(view=None)
            except discord.HTTPException as gone:  # deleted meanwhile, or Discord is away
                log.warning("could not take the buttons off an unsaved search: %s", gone)
            return
        except Exception:
            log.exception("saving search %s failed", search_id)  # a task: nobody else hears
            return
        self._unsaved_warned = False

    def _warn_unsaved(self, exc: StoreError) -> None:
        """Log once per outage, not once per /news."""
        if not self._unsaved_warned:
            log.error("cannot save searches, so /news answers without buttons: %s", exc)
            self._unsaved_warned = True

    @staticmethod
    def _no_hits(index: SearchIndex, query: str, topic: str | None, source: str | None) -> str:
        """The reply to a query without hits: run in a worker thread, never on the event loop
        (suggestions for a query that shares no word look further than a search does)."""
        filters = " and ".join(
            part
            for part in (f"from {source}" if source else "", f"in {topic}" if topic else "")
            if part
        )
        if filters:
            # Matches outside the filters are worth showing, but must not look like answers.
            outside = [hit.title for hit in index.search(query, limit=3)]
            if outside:
                return no_hits_text(query, outside, within=filters)
        return no_hits_text(query, [hit.title for hit in index.suggestions(query)])

    @news.autocomplete("query")
    async def query_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        # /news refuses longer queries; matching a pasted essay would only stall the loop.
        current = current[: self.bot.config.search.max_query_length]
        found = self.bot.library.index.suggest_titles(current, AUTOCOMPLETE_LIMIT)
        choices: dict[str, app_commands.Choice[str]] = {}
        for hit in found:
            name = truncate(hit.title, CHOICE_LIMIT)
            if name not in choices:  # Discord shows duplicates as one confusing list
                choices[name] = app_commands.Choice(name=name, value=name)
        return list(choices.values())[:AUTOCOMPLETE_LIMIT]

    @news.autocomplete("source")
    async def source_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return _choices_containing(current, self.bot.library.index.providers())

    @news.autocomplete("topic")
    async def topic_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return _choices_containing(current, self.bot.library.index.topics())


def resolve_topic(given: str, topics: list[str]) -> str | None:
    """The topic ``given`` names: equal to one when folded, or (autocomplete cuts choices at
    100 characters) the only topic it is the start of."""
    wanted = fold(given)
    for topic in topics:
        if fold(topic) == wanted:
            return topic
    if len(given) >= CHOICE_LIMIT:
        starting = [t for t in topics if fold(t).startswith(wanted)]
        if len(starting) == 1:
            return starting[0]
    return None


def _choices_containing(current: str, names: list[str]) -> list[app_commands.Choice[str]]:
    """Up to 25 of ``names`` (already in the order to offer them) containing what was typed."""
    wanted = fold(current).strip()
    return [
        app_commands.Choice(name=truncate(name, CHOICE_LIMIT), value=name[:CHOICE_LIMIT])
        for name in names
        if wanted in fold(name)
    ][:AUTOCOMPLETE_LIMIT]


# --- buttons --------------------------------------------------------------------------------


def results_view(search_id: int, page: int, total: int, *, has_related: bool) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    if total > 1:
        view.add_item(PageButton(search_id, "prev", max(page - 1, 0), disabled=page == 0))
        view.add_item(
            PageButton(search_id, "next", min(page + 1, total - 1), disabled=page >= total - 1)
        )
    view.add_item(RelatedButton(search_id, page, disabled=not has_related))
    return view


class PageButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"news:(?P<direction>prev|next):(?P<search>[0-9]+):(?P<page>[0-9]+)",
):
    def __init__(self, search_id: int, direction: str, page: int, *, disabled: bool = False):
        label = "◀ Previous" if direction == "prev" else "Next ▶"
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=f"news:{direction}:{search_id}:{page}",
                disabled=disabled,
            )
        )
        self.search_id = search_id
        self.direction = direction
        self.page = page

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> PageButton:
        return cls(int(match["search"]), match["direction"], int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        with FOREGROUND.reply():
            await guarded(interaction, self._show_page, what=f"button {self.custom_id}")

    async def _show_page(self, interaction: discord.Interaction) -> None:
        saved, page, article = await _saved_hit(interaction, self.search_id, self.page)
        if interaction.user.id != saved.user_id:
            raise UserError(
                "Only the person who ran this search can page through it; "
                "run `/news` to search yourself."
            )
        total = len(saved.urls)
        shown = await _presented(interaction.client.library, article)  # type: ignore[attr-defined]
        await interaction.response.edit_message(
            embed=shown.embed(position=page + 1, total=total),
            view=results_view(self.search_id, page, total, has_related=bool(shown.article.related)),
        )


class RelatedButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"news:related:(?P<search>[0-9]+):(?P<page>[0-9]+)",
):
    def __init__(self, search_id: int, page: int, *, disabled: bool = False) -> None:
        super().__init__(
            discord.ui.Button(
                label="Related",
                style=discord.ButtonStyle.primary,
                custom_id=f"news:related:{search_id}:{page}",
                disabled=disabled,
            )
        )
        self.search_id = search_id
        self.page = page

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> RelatedButton:
        return cls(int(match["search"]), int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        with FOREGROUND.reply():
            await guarded(interaction, self._show_related, what=f"button {self.custom_id}")

    async def _show_related(self, interaction: discord.Interaction) -> None:
        # Anyone may look at the related stories: the answer is for their eyes only.
        _saved, _page, article = await _saved_hit(interaction, self.search_id, self.page)
        # Only its related stories are shown: no other tellings to look up.
        library = interaction.client.library  # type: ignore[attr-defined]
        shown = await _presented(library, article, also=False)
        await interaction.response.send_message(embed=related_embed(shown.article), ephemeral=True)


@dataclasses.dataclass(frozen=True, slots=True)
class _Presented:
    """An article as a reply shows it, with what the index adds by meaning."""

    article: Article  # its related stories filled by meaning when the seed listed none
    also: list[Article]  # the same story from other sources
    similar: bool  # the related stories are the index's, not the seed's

    def embed(self, *, position: int, total: int) -> discord.Embed:
        return article_embed(
            self.article,
            position=position,
            total=total,
            also=self.also,
            related_label="Similar stories" if self.similar else "Related",
        )


async def _presented(library: Any, article: Article, *, also: bool = True) -> _Presented:
    """``article`` with the same story's other sources (with ``also``) and, when its seed
    lists no related stories, the nearest ones in meaning (none of this without search by
    meaning)."""
    index = library.index
    if not index.semantic or (article.related and not also):
        return _Presented(article, [], similar=False)

    def neighbours() -> tuple[list[str], list[str]]:
        twins, near = index.neighbours(
            article.url,
            twins=MAX_ALSO if also else 0,
            similar=0 if article.related else MAX_SIMILAR,
        )
        return [hit.url for hit in twins], [hit.url for hit in near]

    # A few milliseconds of arrays at 100,000 articles: a worker thread, not the loop.
    twins, near = await asyncio.to_thread(neighbours)
    found = await library.store.articles_by_url(twins + near)
    also = [found[url] for url in twins if url in found]
    if not near:
        return _Presented(article, also, similar=False)
    related = tuple(
        RelatedLink(
            title=other.title,
            url=other.url,
            provider=other.provider,
            provider_domain=other.provider_domain,
            published=other.published,
        )
        for other in (found[url] for url in near if url in found)
    )
    return _Presented(dataclasses.replace(article, related=related), also, similar=bool(related))


async def _saved_hit(
    interaction: discord.Interaction, search_id: int, page: int
) -> tuple[SavedSearch, int, Article]:
    """The saved search a button points at, the page it can show, and that page's article."""
    bot: Any = interaction.client
    cog = bot.get_cog("NewsCog")
    saving = cog.saving.get(search_id) if cog is not None else None
    if saving is not None:  # pressed before its answer's search was written
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(saving), SAVE_WAIT_SECONDS)
    saved = await bot.library.store.load_search(search_id)
    if saved is None or not saved.urls:
        raise UserError("These results have expired: run `/news` again.")
    page = min(page, len(saved.urls) - 1)
    # Read from the database now: a reload may have removed the story since.
    article = await bot.library.store.get_article(saved.urls[page])
    if article is None:
        raise UserError("That story has been removed since; run `/news` again.")
    return saved, page, article


async def setup(bot: NewsBot) -> None:
    await bot.add_cog(NewsCog(bot))
    bot.add_dynamic_items(PageButton, RelatedButton)
