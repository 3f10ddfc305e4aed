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
    """Random access to `[0, frames)` of a seekable file, float32 `(channels, n)`."""

    def __init__(self, path, label, offset=0, frames=None):
        self.label = label
        self._handle = storage.open_read(path)
        try:
            self._file = sf.SoundFile(self._handle)
        except Exception as exc:
            self._handle.close()
            raise UMXError(f"{label}: not a readable audio file ({exc})") from exc
        self.rate, self.channels = int(self._file.samplerate), int(self._file.channels)
        self.format = self._file.format
        self.offset = int(offset)
        available = max(0, int(self._file.frames) - self.offset)
        self.frames = available if frames is None else min(int(frames), available)

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
        probe = _Reader(path, label)
        offset = int(round(start * probe.rate))
        if offset >= probe.frames and probe.frames > 0:
            probe.close()
            raise UMXError(f"{label}: --start {start} s is past the end ({probe.frames / probe.rate:.1f} s)")
        frames = None if duration is None else int(round(duration * probe.rate))
        probe.close()
        reader = _Reader(path, label, offset, frames)
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
    if ext.lstrip(".") not in FORMATS:
        raise UMXError(f"--ext must be one of {', '.join(FORMATS)}, got {ext!r}")
    ext = ext.lstrip(".")
    began = time.monotonic()
    notes = []
    rate = int(separator.sample_rate)
    with tempfile.TemporaryDirectory(prefix="umx-stream-") as tmp:
        reader = open_input(path, rate, start, duration, backend, tmp, notes)
        try:
            stage = outdir if not storage.is_gcs(outdir) else os.path.join(tmp, "out")
            stems = _stream(separator, reader, stage, ext, aggregate, progress)
        finally:
            reader.close()
        if storage.is_gcs(outdir):
            stems = {name: _upload(local, storage.join(outdir, os.path.basename(local))) for name, local in stems.items()}
    return Result(path, outdir, stems, reader.frames / rate, time.monotonic() - began, notes)


def _upload(local, target):
    storage.upload_file(local, target)
    return target


def _stream(separator, reader, outdir, ext, aggregate, progress):
    n_fft, hop, pad = separator.n_fft, separator.n_hop, separator.n_fft // 2
    length = reader.frames
    if length <= pad:
        raise UMXError(f"{reader.label}: {length} samples ({length / reader.rate:.3f} s); more than "
                       f"{pad} (n_fft/2) are needed")
    channels = reader.channels
    model_channels = 2 if (channels == 1 and separator.nb_channels == 2) else channels

    def read(_, lo, hi):
        audio = reader.reflect(lo, hi, pad)
        return np.repeat(audio, 2, axis=0) if model_channels != channels else audio

    nb_frames = frame_count(length, n_fft, hop)
    jobs = [(0, *chunk) for chunk in separator._chunks(nb_frames)]
    width = separator._chunk_frames(nb_frames)
    per_call = max(1, separator.batch_frames // width)
    groups = [jobs[i : i + per_call] for i in range(0, len(jobs), per_call)]
    # names of the written stems; checked before any work
    names = list(separator.to_dict(np.zeros((1, len(separator.sources), 1, 1), np.float32), aggregate))
    fmt, subtype = FORMATS[ext]
    os.makedirs(outdir, exist_ok=True)
    parts = {name: os.path.join(outdir, f"{name}.{ext}.part") for name in names}
    writers = {}
    try:
        for name, part in parts.items():
            writers[name] = sf.SoundFile(part, "w", samplerate=reader.rate, channels=model_channels, format=fmt,
                                         subtype=subtype)
        buffer = np.zeros((len(separator.sources), model_channels, 0), np.float32)
        base = 0  # padded-signal position of buffer[..., 0]
        emitted = pad  # next padded-signal position to write (output sample emitted - pad)
        end = pad + length

        def add(_, position, stems):
            nonlocal buffer
            stop = position + stems.shape[-1] - base
            if stop > buffer.shape[-1]:
                buffer = np.concatenate([buffer, np.zeros(buffer.shape[:2] + (stop - buffer.shape[-1],), np.float32)],
                                        axis=-1)
            buffer[..., position - base : stop] += stems

        for k, group in enumerate(groups):
            separator._run_group(read, model_channels, group, width, add)
            final = groups[k + 1][0][1] * hop if k + 1 < len(groups) else end  # no later chunk writes before this
            final = min(final, end)
            if final > emitted:
                block = np.array(buffer[..., emitted - base : final - base])
                _normalise_block(block, nb_frames, n_fft, hop, emitted)
                if not np.isfinite(block).all():
                    raise UMXError(f"{reader.label}: the model produced NaN or infinite samples near "
                                   f"{(emitted - pad) / reader.rate:.1f} s (a broken model?)")
                named = separator.to_dict(block[None], aggregate)
                for name in names:
                    data = named[name][0].T
                    if subtype != "FLOAT":
                        data = np.clip(data, -1.0, 1.0)
                    writers[name].write(data)
                emitted = final
                buffer = buffer[..., final - base :]
                base = final
                if progress is not None:
                    progress((emitted - pad) / reader.rate, length / reader.rate)
        for writer in writers.values():
            writer.close()
        out = {}
        for name, part in parts.items():
            os.replace(part, part[: -len(".part")])
            out[name] = part[: -len(".part")]
        return out
    except BaseException:
        for writer in writers.values():
            writer.close()
        for part in parts.values():
            if os.path.exists(part):
                os.remove(part)
        raise


def _normalise_block(block, nb_frames, n_fft, hop, start):
    from umx_core.separator import _normalise

    _normalise(block, nb_frames, n_fft, hop, start=start)
