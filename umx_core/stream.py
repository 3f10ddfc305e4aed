"""Streamed file-to-file separation: `separate_file(path, outdir, separator)`.

A file is never held whole in memory. The Separator's chunks (`segment` frames plus
`context` on each side) are read from the file as they are needed, separated in batches,
overlap-added into a short buffer, and every sample that no later chunk touches is
normalised and written to the stem files at once. The computation is the in-memory
`Separator.__call__`'s, chunk for chunk, so the streamed stems equal the in-memory ones
(to float rounding); memory depends on `segment` and `batch_frames`, not on the track.

Inputs that cannot be read at random positions at the model's rate (compressed formats,
another sample rate, more than two channels, the ffmpeg backend) are first decoded in blocks
to a temporary float WAV at the model's rate (soxr resampling, channels beyond two
downmixed), then streamed from there. Stems are written to `{stem}.{ext}.part` files and
renamed when all are complete, so a half-written stem never looks finished.
"""

import dataclasses
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
import soundfile as sf

from umx_core import storage
from umx_core.errors import UMXError
from umx_core.transforms import frame_count

# --ext: soundfile format and subtype. WAV stays float (stems may exceed full scale).
FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24"), "mp3": ("MP3", "MPEG_LAYER_III"),
           "ogg": ("OGG", "VORBIS")}
# containers soundfile seeks in exactly and cheaply; anything else is decoded to a WAV first
_SEEKABLE = {"WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF", "AU"}
_BLOCK = 1 << 18  # samples decoded per block when converting


@dataclasses.dataclass
class Result:
    """What `separate_file` did for one input."""

    path: str
    outdir: str
    stems: dict  # {stem name: output path}
    duration: float  # seconds of audio separated
    seconds: float  # wall time
    notes: list  # e.g. "downmixed 8 channels", "resampled 48000 -> 44100 Hz"

    @property
    def realtime(self):
        """Audio seconds per wall second."""
        return self.duration / max(self.seconds, 1e-9)


class _Reader:
    """Random access to `[0, frames)` of a seekable file, float32 `(channels, n)`: the excerpt
    from `start` seconds, `duration` seconds long (None: to the end)."""

    def __init__(self, path, label, start=0.0, duration=None):
        self.label = label
        self._handle = storage.open_read(path)
        try:
            self._file = sf.SoundFile(self._handle)
        except Exception as exc:
            self._handle.close()
            raise UMXError(f"{label}: not a readable audio file ({exc})") from exc
        self.rate, self.channels = int(self._file.samplerate), int(self._file.channels)
        self.format = self._file.format
        total = int(self._file.frames)
        self.offset = int(round(start * self.rate))
        if self.offset >= total and total > 0:
            self.close()
            raise UMXError(f"{label}: --start {start} s is past the end ({total / self.rate:.1f} s)")
        available = max(0, total - self.offset)
        self.frames = available if duration is None else min(int(round(duration * self.rate)), available)

    def read(self, lo, hi):
        """Samples `[lo, hi)`, `0 <= lo <= hi <= frames`."""
        try:
            self._file.seek(self.offset + lo)
            data = self._file.read(hi - lo, dtype="float32", always_2d=True)
        except Exception as exc:
            raise UMXError(f"{self.label}: cannot decode samples at {lo / self.rate:.1f} s ({exc})") from exc
        if data.shape[0] != hi - lo:
            raise UMXError(f"{self.label}: ends at {(self.offset + lo + data.shape[0]) / self.rate:.1f} s, "
                           f"before its header's length (truncated file?)")
        if not np.isfinite(data).all():
            raise UMXError(f"{self.label}: NaN or infinite samples near {(self.offset + lo) / self.rate:.1f} s")
        return np.ascontiguousarray(data.T)

    def reflect(self, lo, hi, pad):
        """Samples `[lo, hi)` of the track reflect-padded by `pad` (torch's reflect), as the Separator."""
        index = np.abs(np.arange(lo, hi) - pad)
        last = self.frames - 1
        index = np.where(index > last, 2 * last - index, index)
        first, stop = int(index.min()), int(index.max()) + 1
        return self.read(first, stop)[:, index - first]

    def close(self):
        self._file.close()
        self._handle.close()


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
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.exists(out):
        message = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UMXError(f"{label}: ffmpeg cannot decode it ({message})")
    return out


def _convert(reader, rate, tmpdir, notes):
    """Decode `reader` block by block to a float WAV at `rate` with at most 2 channels."""
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
        for lo in range(0, reader.frames, _BLOCK):
            hi = min(lo + _BLOCK, reader.frames)
            block = reader.read(lo, hi)
            if channels > 2:
                block = np.repeat(block.mean(axis=0, keepdims=True), 2, axis=0)
            block = block.T
            if resampler is not None:
                block = resampler.resample_chunk(block, last=hi == reader.frames)
            out.write(block)
    return path


def open_input(path, rate, start=0.0, duration=None, backend="soundfile", tmpdir=None, notes=None):
    """A reader of `path` (local or gs://) at `rate` Hz with 1 or 2 channels, from `start` seconds
    for `duration` seconds (None or negative: to the end). UMXError naming the file on failure."""
    notes = [] if notes is None else notes
    label = path
    if duration is not None and duration < 0:
        duration = None
    if backend not in ("soundfile", "ffmpeg"):
        raise UMXError(f"--audio-backend must be soundfile or ffmpeg, got {backend!r}")
    if backend == "ffmpeg":
        decoded = _ffmpeg_decode(path, label, start, duration, tmpdir)
        reader = _Reader(decoded, label)
    else:
        if not storage.exists(path):
            raise UMXError(f"{label}: no such file")
        reader = _Reader(path, label, start, duration)
    if reader.frames <= 0:
        reader.close()
        raise UMXError(f"{label}: no audio samples")
    seekable = backend == "ffmpeg" or reader.format in _SEEKABLE  # ffmpeg's output is a local float WAV
    if reader.rate == rate and reader.channels <= 2 and seekable:
        return reader
    try:
        converted = _convert(reader, rate, tmpdir, notes)
    finally:
        reader.close()
    return _Reader(converted, label)


def output_name(path):
    """The folder name for an input's stems: its file name without the extension(s) (.stem.mp4 too)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".stem.mp4", ".stem.m4a"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return os.path.splitext(name)[0]


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
    if ext not in FORMATS:
        raise UMXError(f"--ext must be one of {', '.join(FORMATS)}, got {ext!r}")
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
                reader = open_input(path, int(separator.sample_rate), start, duration, backend, work, notes)
                stage = outdir if not storage.is_gcs(outdir) else os.path.join(work, "out")
            except UMXError as exc:
                exc.stage = "decode"
                results[k] = exc
                continue
            try:
                tracks.append(_Track(k, separator, reader, stage, outdir, ext, names, aggregate, began, notes))
            except UMXError as exc:
                reader.close()
                exc.stage = "decode"
                results[k] = exc
        try:
            for track in _stream(separator, tracks, progress):
                results[track.index] = track.result if track.error is None else track.error
        finally:
            for track in tracks:
                track.close()
    return results


class _Track:
    """One file being separated: its reader, overlap-add buffer and stem writers."""

    def __init__(self, index, separator, reader, stage, outdir, ext, names, aggregate, began, notes):
        self.index, self.separator, self.reader = index, separator, reader
        self.stage, self.outdir, self.ext, self.names, self.aggregate = stage, outdir, ext, names, aggregate
        self.began, self.notes = began, notes
        self.error, self.result, self.writers = None, None, {}
        n_fft, hop = separator.n_fft, separator.n_hop
        self.pad = n_fft // 2
        if reader.frames <= self.pad:
            raise UMXError(f"{reader.label}: {reader.frames} samples ({reader.frames / reader.rate:.3f} s); "
                           f"more than {self.pad} (n_fft/2) are needed")
        self.channels = 2 if (reader.channels == 1 and separator.nb_channels == 2) else reader.channels
        self.nb_frames = frame_count(reader.frames, n_fft, hop)
        self.chunks = separator._chunks(self.nb_frames)
        self.width = separator._chunk_frames(self.nb_frames)
        self.buffer = np.zeros((len(separator.sources), self.channels, 0), np.float32)
        self.base, self.emitted, self.end = 0, self.pad, self.pad + reader.frames
        fmt, self.subtype = FORMATS[ext]
        os.makedirs(stage, exist_ok=True)
        self.parts = {name: os.path.join(stage, f"{name}.{ext}.part") for name in names}
        for name, part in self.parts.items():
            self.writers[name] = sf.SoundFile(part, "w", samplerate=reader.rate, channels=self.channels, format=fmt,
                                              subtype=self.subtype)

    def read(self, lo, hi):
        if self.error is None:
            try:
                audio = self.reader.reflect(lo, hi, self.pad)
                return np.repeat(audio, 2, axis=0) if self.channels != self.reader.channels else audio
            except UMXError as exc:
                exc.stage = "decode"
                self.fail(exc)
        return np.zeros((self.channels, hi - lo), np.float32)  # a failed track's chunk: computed, discarded

    def add(self, position, stems):
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
        from umx_core.separator import _normalise

        block = np.array(self.buffer[..., self.emitted - self.base : final - self.base])
        _normalise(block, self.nb_frames, self.separator.n_fft, self.separator.n_hop, start=self.emitted)
        if not np.isfinite(block).all():
            error = UMXError(f"{self.reader.label}: the model produced NaN or infinite samples near "
                             f"{(self.emitted - self.pad) / self.reader.rate:.1f} s (a broken model?)")
            error.stage = "separate"
            self.fail(error)
            return
        named = self.separator.to_dict(block[None], self.aggregate)
        for name in self.names:
            data = named[name][0].T
            self.writers[name].write(np.clip(data, -1.0, 1.0) if self.subtype != "FLOAT" else data)
        self.buffer = self.buffer[..., final - self.base :]
        self.base = self.emitted = final
        if progress is not None:
            progress((self.emitted - self.pad) / self.reader.rate, self.reader.frames / self.reader.rate)

    def finish(self):
        """Close the stems and rename them into place (uploading them for a gs:// output)."""
        if self.error is not None:
            return
        for writer in self.writers.values():
            writer.close()
        stems = {}
        for name, part in self.parts.items():
            final = part[: -len(".part")]
            os.replace(part, final)
            if storage.is_gcs(self.outdir):
                target = storage.join(self.outdir, os.path.basename(final))
                try:
                    storage.upload_file(final, target)
                except Exception as exc:  # any storage error fails this track only
                    error = UMXError(f"{target}: cannot write the stem ({type(exc).__name__}: {exc})")
                    error.stage = "write"
                    self.fail(error)
                    return
                final = target
            stems[name] = final
        rate = self.reader.rate
        self.result = Result(self.reader.label, self.outdir, stems, self.reader.frames / rate,
                             time.monotonic() - self.began, self.notes)

    def fail(self, exc):
        if self.error is None:
            self.error = exc
            self.close()

    def close(self):
        """Release the reader and writers; remove unfinished stems."""
        for writer in self.writers.values():
            writer.close()
        for part in self.parts.values():
            if os.path.exists(part):
                os.remove(part)
        self.reader.close()


def _stream(separator, tracks, progress=None):
    """Run every track's chunks through the separator in shared batches; yields each track
    when it is finished (or failed). Tracks of the same chunk width share batches."""
    hop = separator.n_hop
    by_shape = {}
    for track in tracks:
        by_shape.setdefault((track.width, track.channels), []).append(track)
    for (width, channels), group_tracks in by_shape.items():
        per_call = max(1, separator.batch_frames // width)
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
            separator._run_group(read, channels, group, width, add)
            for track in members.values():
                # a track's chunks are contiguous: its next one, if any, is the next job
                following = jobs[position][1] if position < len(jobs) and jobs[position][0] is track else None
                track.flush(following[0] * hop if following else track.end, progress if len(tracks) == 1 else None)
                if following is None or track.error is not None:
                    if track.error is None:
                        track.finish()
                    yield track
