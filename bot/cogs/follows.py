"""``/follow``, ``/following``, ``/unfollow``, and the posts of follows.

Every decision (what matches, what was posted, what to do on a refusal) is the follow service's
(:mod:`bot.follows`); this cog reads interactions, checks what only Discord knows (can the bot
post embeds in that channel?), and implements the service's poster with discord.py: a message
in a text channel or a thread, a post per article in a forum channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from ..articles import Article
from ..checks import moderator_only
from ..embeds import article_embed, follows_embed, story_list_embed, truncate
from ..errors import UserError, guarded
from ..follows import FollowService, PostFailed, PostRefused
from ..search import FollowQuery
from ..store import Follow, FollowLimitReached, StoreError
from .news import _choices_containing, resolve_topic

if TYPE_CHECKING:
    from ..client import NewsBot

log = logging.getLogger(__name__)

#: Seconds between passes when nothing changed (a pass also runs on every new index version).
PASS_EVERY_SECONDS = 30.0
#: How long the preview's Save button works.
PREVIEW_TIMEOUT_SECONDS = 600.0
#: Discord's limit on a thread's (a forum post's) name.
THREAD_NAME_LIMIT = 100

_POSTABLE = (discord.TextChannel, discord.Thread, discord.ForumChannel)


def _allowed_mentions(follow: Follow) -> discord.AllowedMentions:
    """Only the follow's own role is ever pinged; never anything a headline holds."""
    roles: list[discord.abc.Snowflake] | bool = (
        [discord.Object(id=follow.role_id)] if follow.role_id else False
    )
    return discord.AllowedMentions(everyone=False, users=False, roles=roles, replied_user=False)


def _embed(follow: Follow, articles: Sequence[Article]) -> discord.Embed:
    if len(articles) == 1:
        return article_embed(articles[0])
    return story_list_embed(
        f"{len(articles)} new stories for “{truncate(follow.query, 120)}”",
        articles,
        footer=f"Follow {follow.id}",
    )


def missing_permissions(channel: Any, me: discord.Member) -> list[str]:
    """What the bot lacks to post embeds in ``channel`` (empty: it can)."""
    perms = channel.permissions_for(me)
    needed = ["view_channel", "embed_links"]
    needed.append("send_messages_in_threads" if isinstance(channel, discord.Thread) else
                  "send_messages")  # fmt: skip
    return [name.replace("_", " ").title() for name in needed if not getattr(perms, name)]


class DiscordFollowPoster:
    """The follow service's poster, with discord.py."""

    def __init__(self, bot: NewsBot) -> None:
        self.bot = bot

    async def post(self, follow: Follow, articles: Sequence[Article], nonce: str) -> int:
        content = f"<@&{follow.role_id}>" if follow.role_id else None
        embed = _embed(follow, articles)
        mentions = _allowed_mentions(follow)
        try:
            channel = await self._channel(follow)
            if isinstance(channel, discord.ForumChannel):
                name = articles[0].title if len(articles) == 1 else embed.title or follow.query
                created = await channel.create_thread(
                    name=truncate(name, THREAD_NAME_LIMIT),
                    content=content,
                    embed=embed,
                    allowed_mentions=mentions,
                )
                return created.message.id
            # A post in an archived thread opens it again (Discord does that); a locked one
            # refuses, and the follow is paused with the reason.
            message = await channel.send(
                content=content, embed=embed, allowed_mentions=mentions, nonce=nonce
            )
            return message.id
        except (discord.Forbidden, discord.NotFound) as exc:
            raise PostRefused(_describe(exc)) from exc
        except discord.HTTPException as exc:
            if 400 <= exc.status < 500 and exc.status != 429:
                raise PostRefused(_describe(exc)) from exc
            raise PostFailed(_describe(exc)) from exc
        except OSError as exc:
            raise PostFailed(str(exc)) from exc

    async def _channel(self, follow: Follow) -> Any:
        channel = self.bot.get_channel(follow.channel_id) or await self.bot.fetch_channel(
            follow.channel_id
        )
        if not isinstance(channel, _POSTABLE):
            raise PostRefused("the channel is not one the bot can post stories in")
        return channel


def _describe(exc: discord.HTTPException) -> str:
    if isinstance(exc, discord.Forbidden):
        return "the bot may not post there any more (Missing Permissions)"
    if isinstance(exc, discord.NotFound):
        return "the channel is gone"
    return f"{exc.status} {exc.text}".strip()


class FollowsCog(commands.Cog):
    def __init__(self, bot: NewsBot) -> None:
        self.bot = bot
        self.service = FollowService(
            bot.library,
            DiscordFollowPoster(bot),
            clock=bot.clock,
            owns_guild=bot.on_own_shard,
        )
        self._loop: asyncio.Task[None] | None = None
        self._changed = bot.library.changed()

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        # Posting starts with the first connection (`newsbot sync` runs setup_hook only).
        if self._loop is None:
            self._loop = asyncio.create_task(self._run(), name="newsbot-follows")

    async def cog_unload(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None

    async def _run(self) -> None:
        while True:
            try:
                await self.service.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("a pass over the follows failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=PASS_EVERY_SECONDS)
            self._changed.clear()

    # --- /follow -------------------------------------------------------------------------------

    @app_commands.command(name="follow", description="Post new stories matching a query here")
    @app_commands.describe(
        query="Words every story must hold (typos are forgiven, as in /news)",
        topic="Only stories with this topic",
        source="Only stories from this source (name or domain)",
        channel="Where to post (default: here); a forum gets one post per story",
        role="A role to mention in each post",
    )
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @moderator_only()
    async def follow(
        self,
        interaction: discord.Interaction,
        query: str,
        topic: str | None = None,
        source: str | None = None,
        channel: app_commands.AppCommandChannel | app_commands.AppCommandThread | None = None,
        role: discord.Role | None = None,
    ) -> None:
        config = self.bot.config
        query = query.strip()
        if not query:
            raise UserError("Tell me what to follow, e.g. `/follow query:facial recognition`.")
        if len(query) > config.search.max_query_length:
            raise UserError(
                f"That query is {len(query)} characters long; "
                f"please keep it under {config.search.max_query_length}."
            )
        index = self.bot.library.index
        if topic is not None:
            resolved = resolve_topic(topic, index.topics())
            if resolved is None:
                raise UserError(
                    f"There is no topic called {truncate(topic, 80)!r}: pick one from the list."
                )
            topic = resolved
        guild = interaction.guild
        assert guild is not None  # guild_only
        if role is not None and role.is_default():
            raise UserError("Pick a role to mention; @everyone is never pinged.")
        target_id = channel.id if channel is not None else interaction.channel_id
        target = guild.get_channel_or_thread(target_id) if target_id else None
        if not isinstance(target, _POSTABLE):
            raise UserError(
                "I can post follows in text and announcement channels, threads and forums;"
                " pick one of those."
            )
        missing = missing_permissions(target, guild.me)
        if missing:
            raise UserError(
                f"I can't post stories in {target.mention}: I need {', '.join(missing)} there."
            )
        existing = await self.bot.library.store.follows(guild.id)
        limit = config.follows.max_per_guild
        if len(existing) >= limit:
            raise UserError(
                f"This server has {len(existing)} follows, the most allowed ({limit});"
                " `/unfollow` one first."
            )
        wanted = FollowQuery(query, topic, source)
        preview_urls = await asyncio.to_thread(self.service.preview, wanted)
        found = await self.bot.library.store.articles_by_url(preview_urls)
        recent = [found[url] for url in preview_urls if url in found]
        where = target.mention
        summary = (
            f"“{truncate(query, 120)}”"
            + (f" in {topic}" if topic else "")
            + (f" from {truncate(source, 60)}" if source else "")
        )
        embed = story_list_embed(
            f"Follow {summary} in #{truncate(target.name, 80)}?",
            recent,
            footer="The latest stories it would have posted. From now on, new ones go there"
            + (f", mentioning @{role.name}." if role else "."),
        )
        if not recent:
            embed.description = (
                "No story in the collection matches yet; new ones will be posted as they come."
            )
        view = _ConfirmFollow(
            self, interaction.user.id, wanted, target.id, role.id if role else None, where
        )
        await interaction.response.send_message(embed=embed, view=view, ephemeral=True)

    async def save_follow(
        self,
        interaction: discord.Interaction,
        wanted: FollowQuery,
        channel_id: int,
        role_id: int | None,
    ) -> Follow:
        assert interaction.guild_id is not None
        try:
            return await self.bot.library.store.add_follow(
                guild_id=interaction.guild_id,
                channel_id=channel_id,
                query=wanted.query,
                topic=wanted.topic,
                source=wanted.source,
                role_id=role_id,
                created_by=interaction.user.id,
                now=self.bot.clock(),
                max_per_guild=self.bot.config.follows.max_per_guild,
            )
        except FollowLimitReached as exc:
            raise UserError(f"Not saved: {exc}; `/unfollow` one first.") from None

    @follow.autocomplete("topic")
    async def _topics(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return _choices_containing(current, self.bot.library.index.topics())

    @follow.autocomplete("source")
    async def _sources(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return _choices_containing(current, self.bot.library.index.providers())

    # --- /following, /unfollow -----------------------------------------------------------------

    @app_commands.command(name="following", description="This server's follows")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @moderator_only()
    async def following(self, interaction: discord.Interaction) -> None:
        assert interaction.guild is not None
        follows = await self.bot.library.store.follows(interaction.guild.id)
        names = {}
        for follow in follows:
            found = interaction.guild.get_channel_or_thread(follow.channel_id)
            if found is not None:
                names[follow.channel_id] = found.mention
        await interaction.response.send_message(
            embed=follows_embed(follows, channel_names=names), ephemeral=True
        )

    @app_commands.command(name="unfollow", description="Stop a follow")
    @app_commands.describe(id="The follow's id, as /following lists it")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @moderator_only()
    async def unfollow(self, interaction: discord.Interaction, id: int) -> None:
        assert interaction.guild_id is not None
        removed = await self.bot.library.store.remove_follow(interaction.guild_id, id)
        if not removed:
            raise UserError(f"This server has no follow {id}; `/following` lists them.")
        log.info("follow %d removed by %s", id, interaction.user.id)
        await interaction.response.send_message(f"Follow {id} removed.", ephemeral=True)

    @unfollow.autocomplete("id")
    async def _follow_ids(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[int]]:
        if interaction.guild_id is None:
            return []
        try:
            follows = await self.bot.library.store.follows(interaction.guild_id)
        except StoreError:
            return []
        return [
            app_commands.Choice(name=truncate(f"{f.id}: {f.query}", 100), value=f.id)
            for f in follows
            if current.strip() in str(f.id) or current.strip().lower() in f.query.lower()
        ][:25]


class _ConfirmFollow(discord.ui.View):
    """The preview's buttons: only whoever asked may save it."""

    def __init__(
        self,
        cog: FollowsCog,
        user_id: int,
        wanted: FollowQuery,
        channel_id: int,
        role_id: int | None,
        where: str,
    ) -> None:
        super().__init__(timeout=PREVIEW_TIMEOUT_SECONDS)
        self.cog = cog
        self.user_id = user_id
        self.wanted = wanted
        self.channel_id = channel_id
        self.role_id = role_id
        self.where = where

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    @discord.ui.button(label="Follow", style=discord.ButtonStyle.primary)
    async def save(self, interaction: discord.Interaction, _button: discord.ui.Button[Any]) -> None:
        async def work(interaction: discord.Interaction) -> None:
            follow = await self.cog.save_follow(
                interaction, self.wanted, self.channel_id, self.role_id
            )
            self.stop()
            log.info("follow %d saved by %s", follow.id, interaction.user.id)
            await interaction.response.edit_message(
                content=f"Following “{truncate(follow.query, 120)}” in {self.where}"
                f" (follow {follow.id}; `/unfollow id:{follow.id}` stops it).",
                embed=None,
                view=None,
            )

        await guarded(interaction, work, what="the follow button")

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(
        self, interaction: discord.Interaction, _button: discord.ui.Button[Any]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(content="Not followed.", embed=None, view=None)


async def setup(bot: NewsBot) -> None:
    await bot.add_cog(FollowsCog(bot))
