"""Audio decoding for every package: soundfile over the storage layer, seeking where it can.

Audio arrays are `(channels, samples)` float32.
"""

import dataclasses
import os

import numpy as np
import soundfile as sf

from umx_core import storage
from umx_core.errors import UMXError


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file holds: sample rate, length in samples, channels."""

    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self):
        """Length in seconds."""
        return self.frames / self.sample_rate


def _open(path):
    handle = storage.open_read(path)
    try:
        return handle, sf.SoundFile(handle)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        handle.close()
        raise UMXError(f"{path}: not a readable audio file ({exc})") from exc


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")


def stem_files(folder):
    """`{stem name: path}` of the audio files in one folder (a dataset sample or test track)."""
    files = {}
    for path in storage.list_files(folder):
        stem, ext = os.path.splitext(path.rstrip("/").split("/")[-1])
        if ext.lower() in AUDIO_EXTENSIONS:
            files.setdefault(stem, path)
    return files


def info(path):
    """`AudioInfo` of a file (local or gs://), reading only its header."""
    handle, f = _open(path)
    with handle, f:
        if f.frames <= 0:
            raise UMXError(f"{path}: no audio samples")
        return AudioInfo(int(f.samplerate), int(f.frames), int(f.channels))


def read(path, start=0, frames=-1):
    """Samples `[start, start + frames)` of a file as float32 `(channels, frames)`.

    Seeks to `start` and decodes only the excerpt; on gs:// only the bytes read are fetched.
    `frames=-1` reads to the end. Raises UMXError naming the file when it cannot be read
    or ends before the excerpt does.
    """
    handle, f = _open(path)
    with handle, f:
        try:
            f.seek(int(start))
            data = f.read(frames=int(frames), dtype="float32", always_2d=True)
        except Exception as exc:
            raise UMXError(f"{path}: cannot read samples from {start} ({exc})") from exc
    if frames >= 0 and data.shape[0] < frames:
        raise UMXError(f"{path}: ends after {start + data.shape[0]} samples, {start + frames} were needed")
    return np.ascontiguousarray(data.T)
