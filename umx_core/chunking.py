"""Chunk geometries: how a track is cut into chunks, padded, and its chunks' stems weighted and
overlap-added, for the in-memory `Separator` and the streaming path alike. A model family hands
the engine one (`umx_core.families`); nothing else computes a chunk's samples.

- `StftGeometry` (UMX): chunks of `segment` STFT frames (a multiple of the EM window), each seen
  by the network with `context` extra frames on both sides; every chunk's stems are overlap-added
  into one buffer of the reflect-padded signal and divided by the window envelope once
  (`normalise`), so STFT, EM and ISTFT are those of the whole track.
- `umx_core.segmenting.SegmentGeometry` (waveform models): fixed segments with overlap and
  triangle weights, and time shifts, as demucs's `apply_model`.

Samples are counted in `samples`, a geometry's steps (STFT frames, or samples) in `frames`.
"""

import collections

import numpy as np

from umx_core.settings import CPU_BATCH_FRAMES

Chunk = collections.namedtuple("Chunk", "start centre first count")
Chunk.__doc__ = """One chunk, in its geometry's steps (STFT frames, or samples): first centre step, centre steps,
first step with context, steps with context."""


Layout = collections.namedtuple("Layout", "samples frames chunks width length")
Layout.__doc__ = """How one track is cut: its samples and STFT frames, its `Chunk`s, the frames every chunk is
padded to (`width`), and the samples of its padded overlap-add buffer (`length`)."""


class StftGeometry:
    """UMX's chunk geometry: chunks of STFT frames over the track reflect-padded by `n_fft // 2`,
    overlap-added and divided by the window envelope once.

    The one place where a track's frames, padding, chunk spans and normalisation are worked out:
    the `Separator` (in memory) and `umx_core.stream` (file to file) ask it, never compute them.

    Args:
        n_fft, n_hop: STFT size and hop.
        segment: centre frames per chunk; None: a whole track is one chunk.
        context: frames the network sees on each side of a chunk's centre.
    """

    def __init__(self, n_fft, n_hop, segment, context):
        self.n_fft, self.n_hop, self.segment, self.context = int(n_fft), int(n_hop), segment, int(context)
        self.pad = self.n_fft // 2  # the padded buffer's sample of the track's first one

    def too_short(self, samples):
        """What is wrong with a track of `samples` samples, or None: the STFT's reflect padding needs
        more than `n_fft // 2`."""
        if samples <= self.pad:
            return f"{samples} samples; more than {self.pad} (n_fft/2) are needed"
        return None

    def layout(self, samples):
        """The `Layout` of a track of `samples` samples."""
        frames = 1 + samples // self.n_hop  # torch.stft's frames with center=True
        return Layout(samples, frames, plan(frames, self.segment, self.context),
                      width(frames, self.segment, self.context), self.n_fft + self.n_hop * (frames - 1))

    def span(self, chunk):
        """`(lo, hi)`: the samples of the padded track a chunk's audio is."""
        lo = chunk.first * self.n_hop
        return lo, lo + self.n_fft + self.n_hop * (chunk.count - 1)

    def input_samples(self, width):
        """Samples of a chunk of `width` frames: what the program takes per row."""
        return self.n_fft + self.n_hop * (width - 1)

    def output(self, chunk, stems):
        """The part of a chunk's program output `(sources, channels, n)` to overlap-add at `place(chunk)`:
        the inverse STFT of its centre frames (already windowed)."""
        return stems[..., : self.n_fft + self.n_hop * (chunk.centre - 1)]

    def place(self, chunk):
        """The padded track's sample where a chunk's stems are overlap-added (samples before the next
        chunk's place are final once it is added)."""
        return chunk.start * self.n_hop

    def gather(self, take, lo, hi, samples):
        """Positions `[lo, hi)` of the padded form of a track of `samples` samples, as `(channels, hi - lo)`;
        `take(indices)` reads the track's samples at `indices`."""
        return take(reflect_index(lo, hi, self.pad, samples))

    def normalise(self, block, layout, start):
        """Divide overlap-added samples `(..., n)` from sample `start` of the padded track by the window
        envelope, in place."""
        normalise(block, layout.frames, self.n_fft, self.n_hop, start)


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


# bytes one frame of a batch holds during a network call, in float32 tensors the size of the
# targets' spectrograms `(targets, bins, channels)`: the slope of peak memory against batch_frames
# measured on the CPU (docs/benchmarks.md, "Peak memory"); EM runs one chunk at a time, so it adds a constant
TENSORS_PER_FRAME = 6


def batch_frames_for(memory, targets, bins, channels, share=0.5, most=1 << 16):
    """Frames per network call that fill `share` of an accelerator's `memory` bytes.

    Args:
        memory: the device's memory in bytes (what TensorFlow may allocate there).
        targets, bins, channels: the separator's targets, STFT bins and channels.
        share: the part of the memory a batch may take (the rest: weights, EM, the runtime).
        most: the upper limit (more frames per call no longer amortise anything).
    Returns:
        at least `CPU_BATCH_FRAMES`.
    """
    per_frame = TENSORS_PER_FRAME * 4 * int(targets) * int(bins) * int(channels)
    return int(min(most, max(CPU_BATCH_FRAMES, memory * share // per_frame)))


# up to this many chunks per call a batch keeps its own size; above it (a GPU's large batches) a
# batch is padded to a power of two so that few shapes are compiled (on a CPU a padded chunk costs
# as much as a real one, and the few shapes that occur are kept in the persistent XLA cache)
EXACT_ROWS = 8


def rows_for(chunks, per_call):
    """Rows of the batch `chunks` chunks are padded to (empty chunks at the end), when at most
    `per_call` go into one call: `chunks` itself up to `EXACT_ROWS` chunks per call, else the next
    power of two (at most `per_call`)."""
    if per_call <= EXACT_ROWS:
        return chunks
    return max(chunks, min(1 << (chunks - 1).bit_length(), per_call))


def chunks_per_call(width, batch_frames):
    """Chunks of `width` frames in one network call of at most `batch_frames` frames (at least one)."""
    return max(1, int(batch_frames) // int(width))
