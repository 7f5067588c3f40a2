"""newsbot: a Discord bot that makes a curated news collection searchable with /news."""

__version__ = "0.1.0"
