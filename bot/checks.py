"""Who may run moderator commands: Manage Server, or a configured moderator role.

``app_commands.default_permissions`` only tells Discord whom to *show* a command to, and server
admins can change that; this check is what the bot itself enforces, every time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import discord
from discord import app_commands

from .errors import ModeratorOnly

T = TypeVar("T")


def is_moderator(
    permissions: discord.Permissions, role_ids: Iterable[int], moderator_roles: Iterable[int]
) -> bool:
    if permissions.administrator or permissions.manage_guild:
        return True
    return not set(role_ids).isdisjoint(moderator_roles)


async def _moderator_predicate(interaction: discord.Interaction) -> bool:
    if interaction.guild_id is None or not isinstance(interaction.user, discord.Member):
        raise app_commands.NoPrivateMessage()
    config = interaction.client.config  # type: ignore[attr-defined]
    roles = [role.id for role in interaction.user.roles]
    if is_moderator(interaction.permissions, roles, config.discord.moderator_role_ids):
        return True
    raise ModeratorOnly()


def moderator_only() -> Callable[[T], T]:
    """Decorator: the command runs only for moderators, and only in a guild."""
    return app_commands.check(_moderator_predicate)
