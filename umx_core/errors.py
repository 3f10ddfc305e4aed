"""The one exception type for the package's expected failures."""


class UMXError(Exception):
    """An expected failure with a message a user can act on.

    Raised for bad arguments (wrong rank, unknown target, too many channels),
    bad audio (NaN samples, too short for the STFT) and unreadable or corrupt
    model files. The message names the file or argument and what is wrong.
    """
