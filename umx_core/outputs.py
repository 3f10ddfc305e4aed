"""Where a track's stems go: a folder per input, named after it, never shared by two inputs.

`umx` and the catalog job both name a track's folder after its file (`output_name`), so
`song.wav` and `song.flac` side by side would share one. `claim` settles that the same way
everywhere and every time: the input that sorts first keeps the folder, every other one is
refused with an error naming both (never silently overwritten). `is_inside` keeps a run's own
output out of its inputs, so a rerun never separates the stems of the previous run.
"""

import os

from umx_core import storage
from umx_core.errors import UMXError


def output_name(path):
    """The folder name for an input's stems: its file name without the extension(s) (.stem.mp4 too)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".stem.mp4", ".stem.m4a"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return os.path.splitext(name)[0]


def claim(folder, paths, holder=None):
    """Settle which of the inputs `paths` that map to one output `folder` keeps it.

    Args:
        holder: the input whose stems the folder already holds (its record names it), if any.
    Returns:
        `(kept path, {refused path: UMXError naming both})`: the holder keeps the folder, else the
        path that sorts first, whatever order the inputs came in (deterministic across runs and workers).
    """
    ordered = sorted(set(paths))
    kept = holder if holder in ordered else ordered[0]
    refused = {other: UMXError(f"{other}: its stems would go to {folder}, the output folder of {kept}; "
                               f"rename one of them or separate it into another output folder",
                               path=other, stage="output")
               for other in ordered if other != kept}
    return kept, refused


def _normal(path):
    return path.rstrip("/") if storage.is_gcs(path) else os.path.abspath(path)


def is_inside(path, folder):
    """Whether `path` lies in `folder` (local paths compared absolute, gs:// as written)."""
    path, folder = _normal(path), _normal(folder)
    return path == folder or path.startswith(folder + "/")
