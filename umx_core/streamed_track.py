"""One file being separated by `umx_core.stream`: its reader, the overlap-add buffer of its chunks'
stems, the samples no later chunk touches normalised and written, its stem writers, and its `Result`
(the stems, or the `UMXError` that stopped it with its stage)."""

import dataclasses
import errno
import shutil
import time

import numpy as np

from umx_core import audio, storage
from umx_core.errors import UMXError

FULL_BELOW = 1 << 24  # bytes free under which a failed write is put down to a full disk


@dataclasses.dataclass
class Result:
    """What `separate_files` did for one input: its stems, or the error that stopped it."""

    path: str
    outdir: str
    stems: dict = None  # {stem name: output path}; None when the track failed
    duration: float = 0.0  # seconds of audio separated
    seconds: float = 0.0  # wall time
    notes: list = dataclasses.field(default_factory=list)  # e.g. "downmixed 8 channels", "resampled 48000 -> 44100 Hz"
    error: UMXError = None  # what stopped it, with its `stage`: "decode", "separate" or "write"
    analytics: dict = None  # loudness, peaks, audibility and vocal segments (`umx_core.analytics.describe`)
    channels: int = None  # of the stems

    @property
    def realtime(self):
        """Audio seconds per wall second."""
        return self.duration / max(self.seconds, 1e-9)


def stage_error(exc, path, stage):
    """The error that stops a track at `stage`: `exc` itself when it already says where, else a
    UMXError with its message, the track's path and the stage."""
    if isinstance(exc, UMXError) and exc.stage is not None:
        return exc
    error = UMXError(str(exc), path=path, stage=stage)
    error.__cause__ = exc
    return error


class StreamedTrack:
    """One file being separated: its reader, overlap-add buffer and stem writers."""

    def __init__(self, index, path, separator, reader, staging, outdir, ext, names, aggregate, began, notes, on_place,
                 analytics):
        self.index, self.path, self.separator, self.reader = index, path, separator, reader
        self.outdir, self.names, self.aggregate = outdir, names, aggregate
        self.began, self.notes = began, notes
        self.error, self.stems, self.writers, self.metering = None, None, None, None
        self.geometry = geometry = separator.engine.geometry
        self.pad = geometry.pad
        short = geometry.too_short(reader.samples)
        if short:
            self.fail(UMXError(f"{reader.label}: {short} ({reader.samples / reader.rate:.3f} s of audio)",
                               path=path, stage="decode"))
            return
        self.channels = 2 if (reader.channels == 1 and separator.nb_channels == 2) else reader.channels
        self.layout = geometry.layout(reader.samples)
        self.chunks, self.width = self.layout.chunks, self.layout.width
        self.buffer = np.zeros((len(separator.sources), self.channels, 0), np.float32)
        self.base, self.emitted, self.end = 0, self.pad, self.pad + reader.samples
        if analytics is not None:  # the hook that meters every block as it is written
            from umx_core.analytics import Metering

            self.metering = Metering(reader.rate, self.channels, names, **analytics)
        try:
            self.writers = audio.StemWriters(outdir, names, ext, reader.rate, self.channels, staging, on_place)
        except (OSError, RuntimeError) as exc:  # no such folder, not writable, disk full (soundfile: RuntimeError)
            self.fail(self._write_error(exc, staging))

    def _write_error(self, exc, staging):
        """The error (stage "write") of stems that could not be written: names the track, and says
        when the disk is full."""
        local = staging if storage.is_gcs(self.outdir) else self.outdir
        free = free_bytes(local)  # libsndfile reports a full disk as a "System error" without errno
        full = getattr(exc, "errno", None) == errno.ENOSPC or (free is not None and free < FULL_BELOW)
        why = f"the disk holding {local} is full" if full else "cannot write them"
        return UMXError(f"{self.reader.label}: stems to {self.outdir}: {why} ({type(exc).__name__}: {exc})",
                        path=self.path, stage="write")

    def read(self, chunk, span):
        """The chunk's samples `span` of the reflect-padded track, with the model's channels (zeros once failed)."""
        lo, hi = span
        if self.error is None:
            try:
                samples = self.geometry.gather(self.reader.gather, lo, hi, self.reader.samples)
                return np.repeat(samples, 2, axis=0) if self.channels != self.reader.channels else samples
            except UMXError as exc:
                self.fail(stage_error(exc, self.path, "decode"))
        return np.zeros((self.channels, hi - lo), np.float32)  # a failed track's chunk: computed, discarded

    def add(self, position, stems):
        """Overlap-add a chunk's `(sources, channels, samples)` at sample `position` of the padded track."""
        if self.error is not None:
            return
        stop = position + stems.shape[-1] - self.base
        if stop > self.buffer.shape[-1]:
            grow = np.zeros(self.buffer.shape[:2] + (stop - self.buffer.shape[-1],), np.float32)
            self.buffer = np.concatenate([self.buffer, grow], axis=-1)
        self.buffer[..., position - self.base : stop] += stems

    def flush(self, final, progress=None):
        """Normalise and write every sample before `final` (no chunk still to come writes there)."""
        final = min(final, self.end)
        if self.error is not None or final <= self.emitted:
            return
        block = np.array(self.buffer[..., self.emitted - self.base : final - self.base])
        self.geometry.normalise(block, self.layout, start=self.emitted)
        if not np.isfinite(block).all():
            self.fail(UMXError(f"{self.reader.label}: the model produced NaN or infinite samples near "
                               f"{(self.emitted - self.pad) / self.reader.rate:.1f} s (a broken model?)",
                               path=self.path, stage="separate"))
            return
        named = self.separator.to_dict(block[None], self.aggregate)
        stems = {name: named[name][0] for name in self.names}
        try:
            self.writers.write(stems)
        except (OSError, RuntimeError) as exc:  # disk full (soundfile: LibsndfileError, a RuntimeError)
            self.fail(self._write_error(exc, self.writers.local))
            return
        if self.metering is not None:
            self.metering.on_block(stems, self.read(None, (self.emitted, final)))
        self.buffer = self.buffer[..., final - self.base :]
        self.base = self.emitted = final
        if progress is not None:
            progress((self.emitted - self.pad) / self.reader.rate, self.reader.samples / self.reader.rate)

    def finish(self):
        """Put the stems in place (uploading them for a gs:// output)."""
        if self.error is not None:
            return
        try:
            self.stems = self.writers.commit()
        except UMXError as exc:
            self.fail(stage_error(exc, self.path, "write"))
        except (OSError, RuntimeError) as exc:  # closing a stem flushes its last bytes: disk full
            self.fail(self._write_error(exc, self.writers.local))

    def result(self):
        """This track's `Result`: its stems, or its error."""
        if self.error is not None:
            return Result(self.path, self.outdir, notes=self.notes, error=self.error)
        analytics = None if self.metering is None else self.metering.result()
        return Result(self.reader.label, self.outdir, self.stems, self.reader.samples / self.reader.rate,
                      time.monotonic() - self.began, self.notes, analytics=analytics, channels=self.channels)

    def fail(self, exc):
        """Stop this track with `exc` (the others go on)."""
        if self.error is None:
            self.error = exc
            self.close()

    def close(self):
        """Release the reader; remove unfinished stems."""
        if self.writers is not None:
            self.writers.abort()
        if self.metering is not None:
            self.metering.close()
        self.reader.close()


def free_bytes(folder):
    """Bytes free on the disk holding `folder` (None if that cannot be told)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None
