"""Flex-template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE): runs the catalog job with the
parameters Dataflow passes as `--name=value` flags."""

import sys

from pipelines.catalog import main

if __name__ == "__main__":
    sys.exit(main())
