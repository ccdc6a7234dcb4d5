"""``python -m gateway``: the ``pli`` command (what the tests run as a real process)."""

import sys

from gateway.cli.main import main

sys.exit(main())
