"""``python -m emote``: the same as the ``emote`` script."""

import sys

from emote.cli import main

sys.exit(main())
