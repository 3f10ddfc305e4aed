"""Decoding for every package: soundfile over the storage layer (local or gs://), the ffmpeg
program for what soundfile cannot read, soxr resampling and channel handling.

Audio arrays are float32 `(channels, samples)`. Every failure is a UMXError that names the file.
"""

import dataclasses
import io
import os
import shutil
import subprocess
import threading

import numpy as np
import soundfile as sf

from umx_core import storage
from umx_core.errors import UMXError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")
# containers soundfile seeks in exactly and cheaply; anything else is decoded to a WAV first
_SEEKABLE = {"WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF", "AU"}
_BLOCK = 1 << 18  # samples decoded per block when converting
BACKENDS = ("soundfile", "ffmpeg")


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file holds: sample rate, length in samples, channels."""

    sample_rate: int
    samples: int
    channels: int

    @property
    def duration(self):
        """Length in seconds."""
        return self.samples / self.sample_rate


class Reader:
    """Random access to `[0, samples)` of a seekable file (local or gs://), as float32 `(channels, n)`.

    Args:
        path: the file.
        label: how errors name it (the user's path when `path` is a temporary decode).
        start, duration: the excerpt in seconds (`duration` None: to the end).
    """

    def __init__(self, path, label=None, start=0.0, duration=None):
        self.label = label or path
        self._handle = storage.open_read(path)
        try:
            # a local file goes to libsndfile as its descriptor, which it reads in C; through a Python
            # file object every 8 KB is a call back into Python (docs/benchmarks.md, "Training input")
            local = isinstance(self._handle, io.BufferedReader)
            self._file = sf.SoundFile(self._handle.fileno(), closefd=False) if local else sf.SoundFile(self._handle)
        except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
            self._handle.close()
            self._storage_failed()
            raise UMXError(f"{self.label}: not a readable audio file ({exc})") from exc
        self.rate, self.channels = int(self._file.samplerate), int(self._file.channels)
        self.format = self._file.format
        total = int(self._file.frames)  # soundfile's "frames" are samples per channel
        self.offset = int(round(start * self.rate))
        if self.offset >= total > 0:
            self.close()
            raise UMXError(f"{self.label}: --start {start} s is past the end ({total / self.rate:.1f} s)")
        available = max(0, total - self.offset)
        self.samples = available if duration is None else min(int(round(duration * self.rate)), available)

    def info(self):
        """The excerpt's `AudioInfo`."""
        return AudioInfo(self.rate, self.samples, self.channels)

    def read(self, lo, hi, out=None):
        """Samples `[lo, hi)`, `0 <= lo <= hi <= samples`, as a new array, or written into `out` (any
        float32 `(channels, hi - lo)` view, returned), decoded through a buffer the thread reuses."""
        if out is not None and out.shape != (self.channels, hi - lo):
            raise UMXError(f"{self.label}: {self.channels} channels of {hi - lo} samples do not fit {out.shape}")
        try:
            self._file.seek(self.offset + lo)
            buffer = None if out is None else _scratch(hi - lo, self.channels)
            data = self._file.read(hi - lo, dtype="float32", always_2d=True, out=buffer)
        except Exception as exc:
            self._storage_failed()
            raise UMXError(f"{self.label}: cannot decode samples at {lo / self.rate:.1f} s ({exc})") from exc
        self._storage_failed()
        if data.shape[0] != hi - lo:
            raise UMXError(f"{self.label}: ends at {(self.offset + lo + data.shape[0]) / self.rate:.1f} s, "
                           f"before its header's length (truncated file?)")
        if not np.isfinite(data).all():
            raise UMXError(f"{self.label}: NaN or infinite samples near {(self.offset + lo) / self.rate:.1f} s")
        if out is None:
            return np.ascontiguousarray(data.T)
        out[...] = data.T
        return out

    def _storage_failed(self):
        """Raise the storage error a gs:// read hit (the decoder, calling from C, saw only an early end)."""
        error = getattr(self._handle, "error", None)
        if error is not None:
            raise UMXError(str(error)) from error  # it names the gs:// path

    def gather(self, index):
        """`(channels, len(index))` samples at the track positions `index` (what a chunk geometry's
        `gather` asks for a span of the track), reading only the range they cover."""
        first, stop = int(index.min()), int(index.max()) + 1
        return self.read(first, stop)[:, index - first]

    def close(self):
        """Release the file."""
        self._file.close()
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def info(path):
    """`AudioInfo` of a file (local or gs://), reading only its header."""
    with Reader(path) as reader:
        if reader.samples <= 0:
            raise UMXError(f"{path}: no audio samples")
        return reader.info()


def read(path, start=0, samples=-1, out=None):
    """Samples `[start, start + samples)` of a file as float32 `(channels, samples)`.

    Seeks to `start` and decodes only the excerpt; on gs:// only the bytes read are fetched.
    `samples=-1` reads to the end. `out`: a float32 `(channels, samples)` array (or view) to write
    into instead of a new array, which saves the allocations (and, for fresh memory, the page
    faults) of a training input pipeline's many small reads. UMXError naming the file when it
    cannot be read, ends early, or does not fit `out`.
    """
    with Reader(path) as reader:
        stop = reader.samples if samples < 0 else int(start) + int(samples)
        if stop > reader.samples:
            raise UMXError(f"{path}: ends after {reader.samples} samples, {stop} were needed")
        return reader.read(int(start), stop, out=out)


_SCRATCH = threading.local()


def _scratch(frames, channels):
    """This thread's reusable float32 `(frames, channels)` decode buffer (grown as needed)."""
    size = frames * channels
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.size < size:
        buffer = _SCRATCH.buffer = np.empty(size, np.float32)
    return buffer[:size].reshape(frames, channels)


def stem_files(folder):
    """`{stem name: path}` of the audio files in one folder (a dataset sample or test track)."""
    files = {}
    for path in storage.list_files(folder):
        stem, ext = os.path.splitext(path.rstrip("/").split("/")[-1])
        if ext.lower() in AUDIO_EXTENSIONS:
            files.setdefault(stem, path)
    return files


def _ffmpeg_decode(path, label, start, duration, tmpdir):
    """Decode the first audio stream with the ffmpeg program into a float WAV (local path)."""
    if shutil.which("ffmpeg") is None:
        raise UMXError(f"{label}: --audio-backend ffmpeg needs the ffmpeg program (Debian: apt-get install ffmpeg)")
    local = path
    if storage.is_gcs(path):
        local = os.path.join(tmpdir, "input" + os.path.splitext(path)[1])
        with open(local, "wb") as f:
            f.write(storage.read_bytes(path))
    elif not os.path.exists(path):
        raise UMXError(f"{label}: no such file")
    out = os.path.join(tmpdir, "ffmpeg.wav")
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    if start:
        cmd += ["-ss", str(start)]
    if duration is not None and duration > 0:
        cmd += ["-t", str(duration)]
    cmd += ["-i", local, "-map", "0:a:0", "-vn", "-c:a", "pcm_f32le", "-f", "wav", out]
    proc = subprocess.run(cmd, capture_output=True)  # bytes: ffmpeg repeats the name, which may not be UTF-8
    if proc.returncode != 0 or not os.path.exists(out):
        lines = proc.stderr.decode("utf-8", "replace").strip().split("\n")
        message = lines[-1].strip() or "no output"
        raise UMXError(f"{label}: ffmpeg cannot decode it ({message})")
    return out


def _convert(reader, rate, tmpdir, notes):
    """Decode `reader` block by block to a float WAV at `rate` with at most 2 channels (more are
    downmixed to their mean on both sides; another rate is resampled with soxr)."""
    import soxr

    channels = reader.channels
    if channels > 2:
        notes.append(f"downmixed {channels} channels to stereo (their mean on both sides)")
    if reader.rate != rate:
        notes.append(f"resampled {reader.rate} -> {rate} Hz")
    out_channels = min(channels, 2)
    path = os.path.join(tmpdir, "decoded.wav")
    resampler = soxr.ResampleStream(reader.rate, rate, out_channels, dtype="float32") if reader.rate != rate else None
    with sf.SoundFile(path, "w", samplerate=rate, channels=out_channels, format="WAV", subtype="FLOAT") as out:
        for lo in range(0, reader.samples, _BLOCK):
            hi = min(lo + _BLOCK, reader.samples)
            block = reader.read(lo, hi)
            if channels > 2:
                block = np.repeat(block.mean(axis=0, keepdims=True), 2, axis=0)
            block = block.T
            if resampler is not None:
                block = resampler.resample_chunk(block, last=hi == reader.samples)
            out.write(block)
    return path


def open_input(path, rate, start=0.0, duration=None, backend="soundfile", tmpdir=None, notes=None):
    """A `Reader` of `path` (local or gs://) at `rate` Hz with 1 or 2 channels.

    Args:
        start, duration: the excerpt in seconds (`duration` None or negative: to the end).
        backend: "soundfile" or "ffmpeg" (the ffmpeg program: m4a/AAC, .stem.mp4 mixtures, ...).
        tmpdir: a local scratch folder for decoded copies (compressed, resampled, >2 channels).
        notes: a list that receives what was done to the audio ("resampled 48000 -> 44100 Hz").
    Raises:
        UMXError naming the file.
    """
    notes = [] if notes is None else notes
    if duration is not None and duration < 0:
        duration = None
    if backend not in BACKENDS:
        raise UMXError(f"--audio-backend must be soundfile or ffmpeg, got {backend!r}")
    if backend == "ffmpeg":
        reader = Reader(_ffmpeg_decode(path, path, start, duration, tmpdir), path)
    else:
        if not storage.exists(path):
            raise UMXError(f"{path}: no such file")
        reader = Reader(path, path, start, duration)
    if reader.samples <= 0:
        reader.close()
        raise UMXError(f"{path}: no audio samples")
    seekable = backend == "ffmpeg" or reader.format in _SEEKABLE  # ffmpeg's output is a local float WAV
    if reader.rate == rate and reader.channels <= 2 and seekable:
        return reader
    try:
        converted = _convert(reader, rate, tmpdir, notes)
    finally:
        reader.close()
    return Reader(converted, path)
