"""The one exception type for the package's expected failures."""

# where a track's separation can fail, in the order a track meets them
STAGES = ("match", "output", "decode", "separate", "write")


class UMXError(Exception):
    """An expected failure with a message a user can act on.

    Raised for bad arguments (wrong rank, unknown target, too many channels), bad audio (NaN
    samples, too short for the STFT), unreadable or corrupt model files, and storage that keeps
    failing. The message names the file or argument and what is wrong.

    Args:
        message: what went wrong, naming the file or argument.
        path: the input the failure belongs to, when it belongs to one.
        stage: where a track's separation failed, one of `STAGES`: "match" (a pattern or list
            named nothing), "output" (its output folder is another input's, or unusable),
            "decode" (reading the input), "separate" (the model's output) or "write" (storing
            the stems or the record).
    """

    def __init__(self, message, path=None, stage=None):
        if stage is not None and stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        super().__init__(message)
        self.path, self.stage = path, stage
