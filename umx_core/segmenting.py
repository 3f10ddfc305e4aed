"""A waveform model's chunk geometry, as demucs's `apply_model` splits and shifts a track.

Split: chunks of `segment` samples every `stride = int((1 - overlap) * segment)`; a chunk shorter
than `segment` (the last) is centred in its segment and read with the track's neighbouring samples,
zeros beyond the track, and its stems are the centre of the program's output. Each chunk's stems
are weighted by a triangle and divided by the sum of the weights there.

Shifts: with `shifts` > 0 the track is separated `shifts` times, each time delayed by `d` samples
of silence (`d` = `max_shift` minus an offset drawn in `[0, max_shift]`), and the runs' stems are
averaged. demucs draws the offsets from Python's `random`; here they come from a generator seeded by
`seed` and the track's length, so the same track gives the same stems on every run.
"""

import collections

import numpy as np

from umx_core.chunking import Layout

SegmentChunk = collections.namedtuple("SegmentChunk", "start centre first count run_start run_length")
SegmentChunk.__doc__ = """One chunk, in samples of the overlap-add buffer (the track starts at `pad`): its first
centre sample, centre samples, first sample read, samples read; where its run's delayed track starts
and that track's length (a run: the track once, or once per shift)."""


class SegmentGeometry:
    """Chunks of fixed segments with overlap, triangle weights and time shifts (see the module).

    The buffer holds `pad = max_shift` samples before the track (where delayed runs begin); a
    chunk's stems leave `output` already divided by their run's weight sum and the number of runs,
    so the buffer needs no normalising.

    Args:
        segment: samples per chunk (the program's input).
        overlap: the part of a segment shared with the next chunk.
        transition_power: the triangle's exponent (demucs: 1).
        shifts: delayed runs averaged (0: the track once, undelayed).
        max_shift: the largest delay in samples (demucs: half a second).
        seed: with the track's length, seeds the delays.
    """

    def __init__(self, segment, overlap=0.25, transition_power=1.0, shifts=0, max_shift=0, seed=0):
        self.segment = int(segment)
        self.stride = max(1, int((1 - overlap) * self.segment))
        self.shifts, self.seed = int(shifts), int(seed)
        self.pad = int(max_shift) if self.shifts else 0
        half = self.segment // 2
        ramp = np.concatenate([np.arange(1, half + 1), np.arange(self.segment - half, 0, -1)]).astype(np.float32)
        self.weight = (ramp / ramp.max()) ** np.float32(transition_power)

    def too_short(self, samples):
        """What is wrong with a track of `samples` samples, or None (any sample will do)."""
        return "no samples" if samples < 1 else None

    def delays(self, samples):
        """The delay of each run of a track of `samples` samples (`[0]` without shifts)."""
        if not self.shifts:
            return [0]
        offsets = np.random.default_rng([self.seed, int(samples)]).integers(0, self.pad + 1, self.shifts)
        return [self.pad - int(offset) for offset in offsets]

    def layout(self, samples):
        """The `Layout` of a track of `samples` samples: every run's chunks, in the order of their place."""
        chunks = []
        for delay in self.delays(samples):
            run_start, run_length = self.pad - delay, samples + delay
            for start in range(0, run_length, self.stride):
                centre = min(run_length - start, self.segment)
                chunks.append(SegmentChunk(run_start + start, centre, run_start + start - (self.segment - centre) // 2,
                                           self.segment, run_start, run_length))
        chunks.sort(key=lambda chunk: chunk.start)
        return Layout(samples, samples, chunks, self.segment, self.pad + samples)

    def span(self, chunk):
        """`(lo, hi)`: the buffer's samples a chunk's audio is (outside the track: zeros)."""
        return chunk.first, chunk.first + chunk.count

    def place(self, chunk):
        """The buffer's sample where a chunk's stems are added."""
        return chunk.start

    def input_samples(self, width):
        """Samples of a chunk of `width` samples."""
        return width

    def output(self, chunk, stems):
        """The part of a chunk's program output `(sources, channels, segment)` to add at `place(chunk)`:
        its centre, times the triangle, divided by its run's weight sum there and the number of runs."""
        lo = (self.segment - chunk.centre) // 2
        return stems[..., lo : lo + chunk.centre] * (self.weight[: chunk.centre] / self.weights(chunk))

    def weights(self, chunk):
        """`(centre,)`: the sum of the triangles of the chunk's run over its centre, times the runs."""
        total = np.zeros(chunk.centre, np.float32)
        at = chunk.start - chunk.run_start  # the chunk's start in its run
        reach = -(-self.segment // self.stride)
        for other in range(max(0, at - reach * self.stride), at + chunk.centre, self.stride):
            length = min(chunk.run_length - other, self.segment)
            lo, hi = max(other, at), min(other + length, at + chunk.centre)
            if hi > lo:
                total[lo - at : hi - at] += self.weight[lo - other : hi - other]
        return total * max(1, self.shifts)

    def gather(self, take, lo, hi, samples):
        """Buffer positions `[lo, hi)` of a track of `samples` samples as `(channels, hi - lo)`, zeros
        outside the track; `take(indices)` reads the track's samples at `indices`."""
        first, last = max(lo - self.pad, 0), min(hi - self.pad, samples)
        inside = np.arange(first, max(first, last))
        got = take(inside)
        out = np.zeros((got.shape[0], hi - lo), np.float32)
        out[:, first + self.pad - lo : first + self.pad - lo + inside.size] = got
        return out

    def normalise(self, block, layout, start):
        """Nothing to do: `output` gives each chunk's share already weighted (kept for the engine's callers)."""
