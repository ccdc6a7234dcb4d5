"""``python -m gateway.cli``: the ``pli`` command, as before the CLI became a package."""

import sys

from gateway.cli.main import main

sys.exit(main())
