"""`python -m pipelines.separate_catalog`: the catalog separation job (see `pipelines.catalog`).

The job's code lives in `pipelines.catalog`, an importable module, so the classes Beam pickles
are found by name on every worker (not in `__main__`).
"""

import sys

from pipelines.catalog import main

if __name__ == "__main__":
    sys.exit(main())
