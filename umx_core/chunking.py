"""Chunk planning shared by the in-memory `Separator` and the streaming path.

A track of `nb_frames` STFT frames is cut into chunks of `segment` centre frames (a multiple
of the EM window), each seen by the network with `context` extra frames on both sides. Every
chunk's stems are overlap-added into one buffer of the reflect-padded signal and divided by the
window envelope once (`normalise`), so STFT, EM and ISTFT are those of the whole track. Samples
are counted in `samples`, STFT frames in `frames`, everywhere.
"""

import collections

import numpy as np

Chunk = collections.namedtuple("Chunk", "start centre first count")
Chunk.__doc__ = """One chunk: first centre frame, centre frames, first frame with context, frames with context."""


def plan(nb_frames, segment, context):
    """The chunks of a track of `nb_frames` frames.

    Args:
        segment: centre frames per chunk; None: the whole track as one chunk.
        context: frames the network sees on each side of a chunk's centre.
    Returns:
        list of `Chunk`; one chunk covering everything when the track fits in one segment (exact).
    """
    segment = segment or nb_frames
    out = []
    for start in range(0, nb_frames, segment):
        stop = min(start + segment, nb_frames)
        if segment >= nb_frames:
            first, last = 0, nb_frames
        else:
            first, last = max(0, start - context), min(nb_frames, stop + context)
        out.append(Chunk(start, stop - start, first, last - first))
    return out


def width(nb_frames, segment, context):
    """Frames every chunk is padded to: fixed when segmenting, so compiled shapes repeat."""
    return nb_frames if segment is None else segment + 2 * context


def reflect_index(lo, hi, pad, samples):
    """Indices into a track of `samples` samples of positions `[lo, hi)` of the track reflect-padded
    by `pad` on both sides (torch's reflect: the edge sample is not repeated)."""
    index = np.abs(np.arange(lo, hi) - pad)
    last = samples - 1
    return np.where(index > last, 2 * last - index, index)


def normalise(out, nb_frames, n_fft, n_hop, start, block=1 << 20):
    """Divide overlap-added samples by the window envelope (sum of squared windows), in place.

    Args:
        out: `(..., samples)` overlap-add of `nb_frames` frames, starting at sample `start`
            of the padded signal. Computed in blocks, so no envelope of the whole track is held.
    """
    window = (np.hanning(n_fft + 1)[:-1] ** 2).astype(np.float32)  # periodic Hann, squared
    for first in range(0, out.shape[-1], block):
        index = np.arange(start + first, start + min(first + block, out.shape[-1]))
        envelope = np.zeros(index.size, np.float32)
        # every sample lies in the frames f with f * n_hop <= i < f * n_hop + n_fft
        for back in range(-(-n_fft // n_hop)):
            frame = index // n_hop - back
            inside = (frame >= 0) & (frame < nb_frames) & (index - frame * n_hop < n_fft)
            envelope[inside] += window[(index - frame * n_hop)[inside]]
        out[..., first : first + index.size] /= envelope


def chunks_per_call(width, batch_frames):
    """Chunks of `width` frames in one network call of at most `batch_frames` frames (at least one)."""
    return max(1, int(batch_frames) // int(width))
