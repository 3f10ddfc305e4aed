"""The package version and the code version recorded in every saved model."""

import functools
import os
import subprocess

__version__ = "0.1.0"


@functools.lru_cache(maxsize=None)
def code_version():
    """`__version__`, plus the git commit (and `-dirty`) when running from a checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(
            ["git", "-C", here, "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__
