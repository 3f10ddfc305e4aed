"""Streamed file-to-file separation: `separate_file(path, outdir, separator)`.

A file is never held whole in memory. The Separator's chunks (`umx_core.chunking`: `segment`
frames plus `context` on each side) are read from the file as they are needed, separated in
batches, overlap-added into a short buffer, and every sample that no later chunk touches is
normalised and written to the stem files at once. The computation is the in-memory
`Separator.__call__`'s, chunk for chunk, so the streamed stems equal the in-memory ones
(to float rounding); memory depends on `segment` and `batch_frames`, not on the track.

Decoding (`umx_core.audio.open_input`: compressed inputs, other rates and more than two
channels go through a temporary float WAV) and the stem writers (`umx_core.audio.StemWriters`:
a name unique to the attempt, renamed into place when every stem is complete) are the audio
module's; this module only schedules chunks.
"""

import dataclasses
import errno
import os
import shutil
import tempfile
import time

import numpy as np

from umx_core import audio, chunking, storage
from umx_core.errors import UMXError
from umx_core.settings import CODECS
from umx_core.transforms import frame_count

FULL_BELOW = 1 << 24  # bytes free under which a failed write is put down to a full disk


@dataclasses.dataclass
class Result:
    """What `separate_file` did for one input."""

    path: str
    outdir: str
    stems: dict  # {stem name: output path}
    duration: float  # seconds of audio separated
    seconds: float  # wall time
    notes: list  # e.g. "downmixed 8 channels", "resampled 48000 -> 44100 Hz"
    checksums: dict = dataclasses.field(default_factory=dict)  # {stem name: `storage.checksum` of the stem placed}
    placed: dict = dataclasses.field(default_factory=dict)  # {stem name: its `storage.placed_identity`}

    @property
    def realtime(self):
        """Audio seconds per wall second."""
        return self.duration / max(self.seconds, 1e-9)


def separate_file(path, outdir, separator, ext="wav", start=0.0, duration=None, aggregate=None,
                  backend="soundfile", progress=None):
    """Separate one file into `outdir/{stem}.{ext}`, streaming; returns a `Result`.

    Args:
        path: input audio, local or gs:// (any format soundfile reads; with `backend="ffmpeg"`
            anything ffmpeg reads, e.g. m4a/AAC or the mixture stream of a .stem.mp4).
        outdir: output folder (local, or gs://: stems are written locally, then uploaded).
        separator: a `umx_core.Separator`.
        ext: wav (float), flac (24 bit), mp3 or ogg.
        start, duration: the excerpt in seconds; `duration` None or negative: to the end.
        aggregate: optional `{stem: [source names]}` as `Separator.to_dict`.
        progress: optional `progress(done_seconds, total_seconds)` callback.
    Raises:
        UMXError naming the file: unreadable, empty, too short, NaN samples, unknown ext.
    """
    (result,) = separate_files([path], [outdir], separator, ext, start, duration, aggregate, backend,
                               progress=progress)
    if isinstance(result, Exception):
        raise result
    return result


def separate_files(paths, outdirs, separator, ext="wav", start=0.0, duration=None, aggregate=None,
                   backend="soundfile", progress=None):
    """Separate several files together: chunks of different files share the network's batches
    (what keeps a GPU busy with short tracks). Arguments as `separate_file`, with one output
    folder per path.

    Returns:
        One entry per path: its `Result`, or the `UMXError` that stopped it (the others go on),
        with a `stage` attribute: "decode" (reading the input), "separate" (the model's output) or
        "write" (storing the stems).
    """
    ext = ext.lstrip(".")
    if ext not in CODECS:
        raise UMXError(f"--ext must be one of {', '.join(CODECS)}, got {ext!r}")
    # names of the written stems; checked before any work
    names = list(separator.to_dict(np.zeros((1, len(separator.sources), 1, 1), np.float32), aggregate))
    results = [None] * len(paths)
    with tempfile.TemporaryDirectory(prefix="umx-stream-") as tmp:
        tracks = []
        for k, (path, outdir) in enumerate(zip(paths, outdirs)):
            began, notes = time.monotonic(), []
            work = os.path.join(tmp, str(k))
            os.makedirs(work)
            try:
                reader = audio.open_input(path, int(separator.sample_rate), start, duration, backend, work, notes)
            except UMXError as exc:
                exc.stage = "decode"
                results[k] = exc
                continue
            try:
                tracks.append(_StreamedTrack(k, separator, reader, os.path.join(work, "out"), outdir, ext, names,
                                             aggregate, began, notes))
            except UMXError as exc:
                reader.close()
                exc.stage = getattr(exc, "stage", "decode")
                results[k] = exc
        try:
            for track in _stream(separator, tracks, progress):
                results[track.index] = track.result if track.error is None else track.error
        finally:
            for track in tracks:
                track.close()
    return results


class _StreamedTrack:
    """One file being separated: its reader, overlap-add buffer and stem writers."""

    def __init__(self, index, separator, reader, staging, outdir, ext, names, aggregate, began, notes):
        self.index, self.separator, self.reader = index, separator, reader
        self.outdir, self.names, self.aggregate = outdir, names, aggregate
        self.began, self.notes = began, notes
        self.error, self.result, self.writers = None, None, None
        n_fft, hop = separator.n_fft, separator.n_hop
        self.pad = n_fft // 2
        if reader.samples <= self.pad:
            raise UMXError(f"{reader.label}: {reader.samples} samples ({reader.samples / reader.rate:.3f} s); "
                           f"more than {self.pad} (n_fft/2) are needed")
        self.channels = 2 if (reader.channels == 1 and separator.nb_channels == 2) else reader.channels
        self.nb_frames = frame_count(reader.samples, n_fft, hop)
        self.chunks, self.width = separator.plan(self.nb_frames)
        self.buffer = np.zeros((len(separator.sources), self.channels, 0), np.float32)
        self.base, self.emitted, self.end = 0, self.pad, self.pad + reader.samples
        try:
            self.writers = audio.StemWriters(outdir, names, ext, reader.rate, self.channels, staging)
        except (OSError, RuntimeError) as exc:  # no such folder, not writable, disk full (soundfile: RuntimeError)
            raise self._write_error(exc, staging) from exc

    def _write_error(self, exc, staging):
        """The UMXError (stage "write") of stems that could not be written: names the track, and says
        when the disk is full."""
        local = staging if storage.is_gcs(self.outdir) else self.outdir
        free = _free_bytes(local)  # libsndfile reports a full disk as a "System error" without errno
        full = getattr(exc, "errno", None) == errno.ENOSPC or (free is not None and free < FULL_BELOW)
        why = f"the disk holding {local} is full" if full else "cannot write them"
        error = UMXError(f"{self.reader.label}: stems to {self.outdir}: {why} ({type(exc).__name__}: {exc})")
        error.stage = "write"
        return error

    def read(self, lo, hi):
        """Samples `[lo, hi)` of the reflect-padded track with the model's channels (zeros once failed)."""
        if self.error is None:
            try:
                samples = self.reader.reflect(lo, hi, self.pad)
                return np.repeat(samples, 2, axis=0) if self.channels != self.reader.channels else samples
            except UMXError as exc:
                exc.stage = "decode"
                self.fail(exc)
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
        chunking.normalise(block, self.nb_frames, self.separator.n_fft, self.separator.n_hop, start=self.emitted)
        if not np.isfinite(block).all():
            error = UMXError(f"{self.reader.label}: the model produced NaN or infinite samples near "
                             f"{(self.emitted - self.pad) / self.reader.rate:.1f} s (a broken model?)")
            error.stage = "separate"
            self.fail(error)
            return
        named = self.separator.to_dict(block[None], self.aggregate)
        try:
            self.writers.write({name: named[name][0] for name in self.names})
        except (OSError, RuntimeError) as exc:  # disk full (soundfile: LibsndfileError, a RuntimeError)
            self.fail(self._write_error(exc, self.writers.local))
            return
        self.buffer = self.buffer[..., final - self.base :]
        self.base = self.emitted = final
        if progress is not None:
            progress((self.emitted - self.pad) / self.reader.rate, self.reader.samples / self.reader.rate)

    def finish(self):
        """Put the stems in place (uploading them for a gs:// output) and make the `Result`."""
        if self.error is not None:
            return
        try:
            stems = self.writers.commit()
        except UMXError as exc:
            exc.stage = "write"
            self.fail(exc)
            return
        except (OSError, RuntimeError) as exc:  # closing a stem flushes its last bytes: disk full
            self.fail(self._write_error(exc, self.writers.local))
            return
        rate = self.reader.rate
        self.result = Result(self.reader.label, self.outdir, stems, self.reader.samples / rate,
                             time.monotonic() - self.began, self.notes, self.writers.checksums,
                             self.writers.placed)

    def fail(self, exc):
        """Stop this track with `exc` (the others go on)."""
        if self.error is None:
            self.error = exc
            self.close()

    def close(self):
        """Release the reader; remove unfinished stems."""
        if self.writers is not None:
            self.writers.abort()
        self.reader.close()


def _free_bytes(folder):
    """Bytes free on the disk holding `folder` (None if that cannot be told)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _stream(separator, tracks, progress=None):
    """Run every track's chunks through the separator in shared batches; yields each track
    when it is finished (or failed). Tracks of the same chunk width share batches."""
    hop = separator.n_hop
    by_shape = {}
    for track in tracks:
        by_shape.setdefault((track.width, track.channels), []).append(track)
    for (width, channels), group_tracks in by_shape.items():
        per_call = chunking.chunks_per_call(width, separator.batch_frames)
        jobs = [(track, chunk) for track in group_tracks for chunk in track.chunks]  # each track's contiguous
        position = 0
        while position < len(jobs):
            batch = []
            while position < len(jobs) and len(batch) < per_call:
                track, chunk = jobs[position]
                position += 1
                if track.error is None:
                    batch.append((track, chunk))
            if not batch:
                continue
            members = {id(t): t for t, _ in batch}
            order = list(members)
            group = [(order.index(id(t)), *chunk) for t, chunk in batch]
            read = lambda b, lo, hi: members[order[b]].read(lo, hi)  # noqa: E731
            add = lambda b, at, stems: members[order[b]].add(at, stems)  # noqa: E731
            separator.separate_chunks(read, channels, group, width, add)
            for track in members.values():
                # a track's chunks are contiguous: its next one, if any, is the next job
                following = jobs[position][1] if position < len(jobs) and jobs[position][0] is track else None
                track.flush(following.start * hop if following else track.end,
                            progress if len(tracks) == 1 else None)
                if following is None or track.error is not None:
                    if track.error is None:
                        track.finish()
                    yield track
