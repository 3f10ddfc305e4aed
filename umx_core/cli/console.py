"""What the project's commands print: our words on stderr, TensorFlow's native log lines only on request.

TensorFlow's C++ runtime writes 6-7 lines to stderr when it loads (the oneDNN notice, the
CUDA probe, `cuInit` failing on a machine without a GPU), some of them before its logging is
even configured, so `TF_CPP_MIN_LOG_LEVEL` alone does not silence them. Every command calls
`quiet_tensorflow(verbose)` before anything imports TensorFlow: the environment asks the runtime
for errors only, and the import itself runs with file descriptor 2 pointed at a scratch file.
"""

import contextlib
import logging
import os
import sys
import tempfile


@contextlib.contextmanager
def native_stderr_hidden():
    """Send what native code writes to file descriptor 2 to a scratch file for the duration."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def quiet_tensorflow(verbose=False):
    """Import TensorFlow (once per process) with its native start-up lines hidden unless `verbose`.

    Also sets `TF_CPP_MIN_LOG_LEVEL=3` for this process and the worker processes it starts, unless
    the user set it, and keeps TensorFlow's and absl's Python loggers to errors.
    """
    if verbose:
        import tensorflow  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        with native_stderr_hidden():
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe logs once, here (devices stay configurable)
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
