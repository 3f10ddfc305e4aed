"""Streamed file-to-file separation: `separate_file(path, outdir, separator)`.

A file is never held whole in memory. The Separator's chunks (its family's geometry,
`umx_core.chunking`) are read from the file as they are needed, separated in
batches by the chunk engine (`umx_core.engine`), overlap-added into a short buffer, and every sample that no later chunk touches is
normalised and written to the stem files at once. The computation is the in-memory
`Separator.__call__`'s, chunk for chunk, so the streamed stems equal the in-memory ones
(to float rounding); memory depends on `segment` and `batch_frames`, not on the track.

Decoding (`umx_core.audio.open_input`: compressed inputs, other rates and more than two
channels go through a temporary float WAV) and the stem writers (`umx_core.audio.StemWriters`:
a name unique to the attempt, renamed into place when every stem is complete) are the audio
module's; each file's buffer and writers are `umx_core.streamed_track`'s; this module schedules chunks.
"""

import os
import tempfile
import time

import numpy as np

from umx_core import audio, settings
from umx_core.engine import Piece
from umx_core.errors import UMXError
from umx_core.streamed_track import Result, StreamedTrack, stage_error

__all__ = ["Result", "separate_file", "separate_files"]

def separate_file(path, outdir, separator, ext="wav", start=0.0, duration=None, aggregate=None,
                  backend="soundfile", progress=None, analytics=None):
    """Separate one file into `outdir/{stem}.{ext}`, streaming; returns its `Result`.

    Args:
        path: input audio, local or gs:// (any format soundfile reads; with `backend="ffmpeg"`
            anything ffmpeg reads, e.g. m4a/AAC or the mixture stream of a .stem.mp4).
        outdir: output folder (local, or gs://: stems are written locally, then uploaded).
        separator: a `umx_core.Separator`.
        ext: wav (float), flac (24 bit), mp3 or ogg.
        start, duration: the excerpt in seconds; `duration` None or negative: to the end.
        aggregate: optional `{stem: [source names]}` as `Separator.to_dict`.
        progress: optional `progress(done_seconds, total_seconds)` callback.
        analytics: None (none), or the keyword arguments of `umx_core.analytics.describe` (`{}`:
            its defaults): each stem's and the mixture's loudness, peaks and audibility, measured
            as the stems are written, in `Result.analytics`.
    Raises:
        UMXError naming the file and its stage: unreadable, empty, too short, NaN samples,
        stems that cannot be written.
    """
    (result,) = separate_files([path], [outdir], separator, ext, start, duration, aggregate, backend,
                               progress=progress, analytics=analytics)
    if result.error is not None:
        raise result.error
    return result


def separate_files(paths, outdirs, separator, ext="wav", start=0.0, duration=None, aggregate=None,
                   backend="soundfile", progress=None, on_place=None, analytics=None):
    """Separate several files together: chunks of different files share the network's batches
    (what keeps a GPU busy with short tracks). Arguments as `separate_file`, with one output
    folder per path.

    Args:
        on_place: optional `on_place(local_file, target)`, called for each finished stem just
            before it is put in place at `target` (what a caller that checks its outputs later
            needs to know of the bytes it placed).
    Returns:
        One `Result` per path, in order: its stems, or the `UMXError` that stopped it (the others
        go on).
    Raises:
        UMXError for an argument that fails every file (an unknown codec or aggregate source).
    """
    ext = settings.check("codec", ext)
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
                results[k] = Result(path, outdir, notes=notes, error=stage_error(exc, path, "decode"))
                continue
            track = StreamedTrack(k, path, separator, reader, os.path.join(work, "out"), outdir, ext, names,
                                   aggregate, began, notes, on_place, analytics)
            if track.error is None:
                tracks.append(track)
            else:
                results[k] = track.result()
        try:
            for track in _stream(separator.engine, tracks, progress):
                results[track.index] = track.result()
        finally:
            for track in tracks:
                track.close()
    return results


def _stream(engine, tracks, progress=None):
    """Run every track's chunks through the chunk engine in shared batches; yields each track
    when it is finished (or failed). Tracks of the same chunk width and channels share batches."""
    geometry = engine.geometry
    by_shape = {}
    for track in tracks:
        by_shape.setdefault((track.width, track.channels), []).append(track)
    for width, group_tracks in ((shape[0], group) for shape, group in by_shape.items()):
        per_call = engine.per_call(width)
        jobs = [(track, chunk) for track in group_tracks for chunk in track.chunks]  # each track's contiguous
        position = 0
        while position < len(jobs):
            chosen = []
            while position < len(jobs) and len(chosen) < per_call:
                track, chunk = jobs[position]
                position += 1
                if track.error is None:
                    chosen.append((track, chunk))
            # read once the batch is chosen: a read that fails keeps its row (zeros, discarded), so one
            # broken track never changes the shape the other tracks are computed in
            batch = [Piece(track, chunk, track.read(chunk, geometry.span(chunk))) for track, chunk in chosen]
            for piece, stems in zip(batch, engine.separate(batch, width) if batch else []):
                piece.key.add(geometry.place(piece.chunk), stems)
            for track in dict.fromkeys(piece.key for piece in batch):  # each once, in batch order
                # a track's chunks are contiguous: its next one, if any, is the next job
                following = jobs[position][1] if position < len(jobs) and jobs[position][0] is track else None
                track.flush(geometry.place(following) if following else track.end,
                            progress if len(tracks) == 1 else None)
                if following is None or track.error is not None:
                    track.finish()
                    yield track
