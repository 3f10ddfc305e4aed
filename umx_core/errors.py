"""The one exception type for the package's expected failures, and how a message shows a name."""

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


def printable(text):
    """`text` as a terminal or a log line can show it: every character Python would not print as
    itself (controls such as a newline or an escape, line separators, format characters such as a
    bidi override) written as its escape (`\\n`, `\\x1b`, `\\u2028`), and each byte of a file name
    that is not UTF-8 (a surrogate of `os.fsdecode`) as `\\xNN`, the byte itself. Printable text,
    any script's, is left as it is. For messages: a name's exact text stays in the record's field."""
    out = []
    for char in str(text):
        if char.isprintable():
            out.append(char)
        elif "\udc80" <= char <= "\udcff":
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        else:
            out.append(repr(char)[1:-1])
    return "".join(out)
