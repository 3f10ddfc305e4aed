"""Audio in and out for every package: decode (soundfile, the ffmpeg program), resample (soxr),
channel handling, and the stem writers (a name unique to the attempt, renamed into place).

Audio arrays are float32 `(channels, samples)`; lengths are counted in samples.
"""

from umx_core.audio.decode import (
    AUDIO_EXTENSIONS,
    BACKENDS,
    AudioInfo,
    Reader,
    info,
    open_input,
    read,
    stem_files,
)
from umx_core.audio.encode import StemWriters

__all__ = ["AUDIO_EXTENSIONS", "BACKENDS", "AudioInfo", "Reader", "StemWriters", "info", "open_input", "read",
           "stem_files"]
