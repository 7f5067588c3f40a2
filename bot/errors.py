"""What goes wrong in an interaction, and the one policy for telling the user.

Slash commands reach this through the command tree's ``on_error``; buttons, which bypass the
tree, through :func:`guarded`. Either way: a mistake the user can fix gets a sentence of its
own, a refusal says why, an expired interaction is only logged (nothing can be sent on a dead
token), and anything else is logged with its traceback while the user gets a short apology.
Every answer is ephemeral.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

log = logging.getLogger(__name__)

# Discord's "Unknown interaction": the interaction's token expired (3 s to answer) or was never
# valid; nothing can be sent on it any more.
UNKNOWN_INTERACTION = 10062
EXPIRED_NOTE = "the interaction expired before the bot answered (Unknown interaction)"
APOLOGY = "Sorry, something went wrong on our side. Please try again in a moment."


class UserError(app_commands.AppCommandError):
    """A mistake the user can fix; the message is shown to them (ephemerally) as it is."""


class ModeratorOnly(app_commands.CheckFailure):
    def __init__(self) -> None:
        super().__init__(
            "Only moderators can do that: you need the Manage Server permission"
            " or a moderator role."
        )


def interaction_expired(error: BaseException) -> bool:
    """True when ``error`` (or the error a command raised) is Discord's Unknown interaction."""
    original = getattr(error, "original", error)  # CommandInvokeError wraps what was raised
    return isinstance(original, discord.NotFound) and original.code == UNKNOWN_INTERACTION


def describe_error(error: Exception) -> str | None:
    """The sentence a user should see for ``error``, or None for an unexpected failure."""
    error = getattr(error, "original", None) or error  # what a command raised, unwrapped
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, app_commands.CommandNotFound):
        # A command Discord still lists (a stale sync) that this bot no longer has: the user
        # did nothing wrong and neither did the bot, so no traceback in the log either.
        return "That command no longer exists here; Discord may take a moment to update the list."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down a little: try again in {error.retry_after:.1f} s."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command works in a server, not in direct messages."
    if isinstance(error, app_commands.MissingPermissions):
        needed = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
        return f"You need the {needed} permission to do that."
    if isinstance(error, ModeratorOnly):
        return str(error)
    if isinstance(error, app_commands.CheckFailure):
        return "You are not allowed to use this command here."
    return None


async def reply_ephemeral(interaction: discord.Interaction, message: str) -> None:
    """Answer or follow up, whichever is still possible; never raise (the user may be gone)."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not tell the user about an error: %s", exc)


async def handle_error(interaction: discord.Interaction, error: Exception, *, what: str) -> None:
    """The reply policy: ``what`` names the command or button in the log."""
    if interaction_expired(error):
        # Too late: the token is dead, so an apology would fail the same way. Not a bug in
        # the command either (the answer was just slow), so a warning, not a traceback.
        log.warning("%s: %s", what, EXPIRED_NOTE)
        return
    message = describe_error(error)
    if message is None:
        log.error("%s failed", what, exc_info=error)
        message = APOLOGY
    await reply_ephemeral(interaction, message)


async def guarded(
    interaction: discord.Interaction,
    action: Callable[[discord.Interaction], Awaitable[None]],
    *,
    what: str,
) -> None:
    """Run a button's ``action`` under the same policy the command tree applies."""
    try:
        await action(interaction)
    except Exception as exc:
        await handle_error(interaction, exc, what=what)
