"""``python -m kasagi``: the same as the ``kasagi`` command."""

from __future__ import annotations

import sys

from kasagi.cli import main

if __name__ == "__main__":
    sys.exit(main())
