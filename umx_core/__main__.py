"""`python -m umx_core`: the `umx` command."""

import sys

from umx_core.cli import main

sys.exit(main())
