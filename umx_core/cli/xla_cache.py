"""`umx`'s persistent XLA compilation cache: a second run on the same machine reuses the first one's programs.

The Separator compiles a handful of fixed shapes with XLA (about 10 s for a umxhq-size model on two
cores) at every start. TensorFlow can keep compiled programs on disk
(`--tf_xla_persistent_cache_directory` in `TF_XLA_FLAGS`), but its key is only the function's
signature and its HLO: XLA's own flags, the CPU the machine code was generated for and the
TensorFlow build are not in it, so an entry compiled under other settings is loaded as if it were
this process's (a program compiled with `XLA_FLAGS=--xla_cpu_enable_fast_math=true` is loaded by a
run without it and gives that run's numbers), and one compiled on another CPU may execute
instructions this one lacks. So the entries go to a folder of their own per CPU (its instruction
sets), TensorFlow build and XLA flags (`machine_key`): an entry is loaded only where it was compiled.

Loading one makes XLA log `cpu_aot_loader.cc: ... Target machine feature +prefer-no-gather is not
supported on the host machine ... SIGILL` on every CPU with AVX-512, for the very machine that
compiled it (`prefer-no-gather` is a code-generation preference XLA adds there, not an instruction
set the host could report). TensorFlow's native errors are therefore kept off while the cache is in
use, and `--verbose`, which shows TensorFlow's lines, compiles afresh instead.

The catalog job does not use the cache (pipelines/handler.py): its workers compile their own programs.
"""

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import platform

from umx_core.checks import FALSE_WORDS

FLAG = "--tf_xla_persistent_cache_directory"
# what a compiled program depends on besides its HLO, as /proc/cpuinfo names it (x86, then Arm)
CPU_FIELDS = ("vendor_id", "cpu family", "model", "model name", "flags",
              "CPU implementer", "CPU architecture", "CPU variant", "CPU part", "Features")


def folder():
    """The cache's root: `UMX_XLA_CACHE` if it names one, else `{umx cache}/xla`; None when disabled
    (`UMX_XLA_CACHE=off`). Programs go to a subfolder per `machine_key()`."""
    from umx_core.registry import cache_dir

    setting = os.environ.get("UMX_XLA_CACHE", "")
    if setting.lower() in FALSE_WORDS:
        return None
    return setting or os.path.join(cache_dir(), "xla")


def host_cpu():
    """This CPU's model and instruction sets, as text (the first processor of /proc/cpuinfo;
    elsewhere what `platform` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            first = f.read().split("\n\n", 1)[0]
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {name.strip(): value.strip() for name, value in fields.items()}
    return "\n".join(f"{name}: {fields[name]}" for name in CPU_FIELDS if name in fields) or platform.machine()


def tensorflow_build():
    """The installed TensorFlow, found without importing it.

    Returns:
        `(version, identity)`: the identity names its files (path, size and time of `__init__.py`),
        so a reinstall or another build of the same version is another one.
    """
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.origin:
        return "none", ""
    try:
        version = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:  # tensorflow-cpu, tf-nightly and other builds
        version = "tf"
    stat = os.stat(spec.origin)
    return version, f"{spec.origin} {stat.st_size} {stat.st_mtime_ns}"


def machine_key():
    """The cache's subfolder for this process: `tf<version>-<digest of the CPU, the TensorFlow build
    and XLA's flags>` (`XLA_FLAGS`, and `TF_XLA_FLAGS` but for the cache's own flag)."""
    version, build = tensorflow_build()
    xla_flags = " ".join(flag for flag in os.environ.get("TF_XLA_FLAGS", "").split() if not flag.startswith(FLAG))
    text = "\n".join([host_cpu(), build, os.environ.get("XLA_FLAGS", ""), xla_flags])
    return f"tf{version}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


@contextlib.contextmanager
def enabled(verbose=False):
    """TensorFlow started inside the block keeps compiled XLA programs in `folder()/machine_key()`.

    Start TensorFlow inside it (`umx_core.cli.console.quiet_tensorflow` reads the flags): the
    environment is restored on leaving, so processes started later do not inherit the cache.
    `TF_XLA_FLAGS` that already name a cache folder are kept. While a cache is in use,
    TensorFlow's native errors are off (`TF_CPP_MIN_LOG_LEVEL=3`: XLA's false warning on each loaded
    program); `verbose`, which asks for TensorFlow's lines, uses no cache.
    Yields:
        the folder in use, or None.
    """
    saved = {name: os.environ.get(name) for name in ("TF_XLA_FLAGS", "TF_CPP_MIN_LOG_LEVEL")}
    flags = saved["TF_XLA_FLAGS"] or ""
    if verbose:
        path = None
    elif FLAG in flags:
        path = flags.split(FLAG + "=", 1)[-1].split()[0]
    else:
        path = folder()
        if path is not None:
            path = os.path.join(path, machine_key())
            os.makedirs(path, exist_ok=True)
            os.environ["TF_XLA_FLAGS"] = f"{flags} {FLAG}={path}".strip()
    if path is not None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # read once, when TensorFlow starts
    try:
        yield path
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
