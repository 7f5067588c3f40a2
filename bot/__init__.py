"""newsbot: a Discord bot that makes a curated news collection searchable with /news."""

import os

__version__ = "0.1.0"

# Before anything imports numpy: its BLAS would start a thread per core that spins between
# calls. newsbot's products are small (a query against a 1,024-row shortlist), and a bot
# shares its cores with the event loop, a loader and the database: one thread is what it
# wants. An operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
