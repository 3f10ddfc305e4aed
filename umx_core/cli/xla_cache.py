"""A persistent XLA compilation cache, so a command's second run reuses the first one's programs.

The Separator compiles a handful of fixed shapes with XLA (about 10 s for a umxhq-size model on two
cores) at every start. TensorFlow can keep compiled programs on disk
(`--tf_xla_persistent_cache_directory` in `TF_XLA_FLAGS`): an entry is keyed by the function's
signature and its HLO and checked against the HLO when it is loaded, so another model, shape or
TensorFlow build is a new entry, never a wrong one; each entry is written under a unique temporary
name and renamed into place, so processes running at once can share one folder.
"""

import os

FLAG = "--tf_xla_persistent_cache_directory"
OFF = ("0", "off", "false", "no")


def folder():
    """The cache folder: `UMX_XLA_CACHE` if it names one, else `{umx cache}/xla`; None when disabled
    (`UMX_XLA_CACHE=off`)."""
    from umx_core.registry import cache_dir

    setting = os.environ.get("UMX_XLA_CACHE", "")
    if setting.lower() in OFF:
        return None
    return setting or os.path.join(cache_dir(), "xla")


def enable():
    """Point TensorFlow's persistent XLA cache at `folder()` unless `TF_XLA_FLAGS` already names one.

    Call before TensorFlow compiles anything (the commands call it before importing TensorFlow).
    Returns:
        the folder in use, or None.
    """
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if FLAG in flags:
        return flags.split(FLAG + "=", 1)[-1].split()[0]
    path = folder()
    if path is None:
        return None
    os.makedirs(path, exist_ok=True)
    os.environ["TF_XLA_FLAGS"] = f"{flags} {FLAG}={path}".strip()
    return path
