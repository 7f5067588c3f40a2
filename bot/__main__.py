"""``python -m bot`` is the ``newsbot`` command."""

import sys

from .cli import main

sys.exit(main())
