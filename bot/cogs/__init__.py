"""The bot's cogs: each reads an interaction, calls the core, and replies."""
