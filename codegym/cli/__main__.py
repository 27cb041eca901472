"""``python -m codegym.cli``: the ``codegym`` command."""

import sys

from codegym.cli import main

sys.exit(main())
