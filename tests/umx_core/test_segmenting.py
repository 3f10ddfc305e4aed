"""The waveform geometry against demucs's own `apply_model`: split, overlap, and time shifts."""

import numpy as np
import pytest

from umx_core.segmenting import SegmentGeometry

RATE, SEGMENT = 800, 0.5  # a 400-sample segment, shifts of up to 400 samples


class Position:
    """A model whose stems depend on where a sample sits in its segment (so a misplaced chunk shows)."""

    def __init__(self, sources=2):
        self.sources = sources

    def numpy(self, audio):
        """`(rows, channels, n)` -> `(rows, sources, channels, n)`."""
        ramp = np.linspace(0.5, 1.5, audio.shape[-1])
        return np.stack([audio * ramp * (s + 1) + s * audio ** 2 for s in range(self.sources)], axis=1)

    def torch(self):
        import torch

        numpy = self.numpy

        class Module(torch.nn.Module):
            samplerate, segment, sources = RATE, SEGMENT, ["a", "b"][: self.sources]

            def valid_length(self, length):  # HTDemucs's: always the training segment
                return int(RATE * SEGMENT)

            def forward(self, mix):
                return torch.from_numpy(numpy(mix.numpy().astype(np.float64))).float()

        return Module()


def separate(geometry, model, track):
    """What the Separator does with a geometry: every chunk through the model, added at its place."""
    layout = geometry.layout(track.shape[-1])
    out = np.zeros((model.sources, track.shape[0], layout.length))
    for chunk in layout.chunks:
        audio = geometry.gather(lambda index: track[:, index], *geometry.span(chunk), track.shape[-1])
        stems = geometry.output(chunk, model.numpy(audio[None].astype(np.float64))[0])
        out[..., geometry.place(chunk) : geometry.place(chunk) + stems.shape[-1]] += stems
    out = out[..., geometry.pad : geometry.pad + track.shape[-1]]
    geometry.normalise(out, layout, geometry.pad)
    return out


def reference(model, track, shifts, overlap, offsets):
    import random

    import torch
    from demucs.apply import apply_model

    draws = iter(offsets)
    original, random.randint = random.randint, lambda lo, hi: next(draws)
    try:
        with torch.no_grad():
            return apply_model(model.torch(), torch.from_numpy(track[None]), shifts=shifts, split=True,
                               overlap=overlap)[0].numpy()
    finally:
        random.randint = original


@pytest.mark.parametrize("samples", [150, 400, 1234, 2999])
@pytest.mark.parametrize("shifts,overlap", [(0, 0.25), (0, 0.5), (1, 0.25), (3, 0.25)])
def test_equals_demucs_apply_model(samples, shifts, overlap):
    track = np.random.default_rng(samples).standard_normal((2, samples)).astype(np.float32)
    geometry = SegmentGeometry(int(RATE * SEGMENT), overlap, shifts=shifts, max_shift=RATE // 2, seed=7)
    delays = geometry.delays(samples)
    ours = separate(geometry, Position(), track)
    theirs = reference(Position(), track, shifts, overlap, [RATE // 2 - d for d in delays])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_delays_are_the_tracks_own():
    """The same track gets the same delays on every run; another length, others; all within range."""
    geometry = SegmentGeometry(400, shifts=5, max_shift=400, seed=1)
    assert geometry.delays(1000) == SegmentGeometry(400, shifts=5, max_shift=400, seed=1).delays(1000)
    assert geometry.delays(1000) != geometry.delays(1001)
    assert all(0 <= d <= 400 for d in geometry.delays(1000))
    assert SegmentGeometry(400).delays(1000) == [0]


def test_chunks_come_in_the_order_of_their_place():
    """The stream writes everything before the next chunk's place as final: places never go back."""
    layout = SegmentGeometry(400, shifts=3, max_shift=400, seed=2).layout(5000)
    places = [chunk.start for chunk in layout.chunks]
    assert places == sorted(places) and len(places) > 3 * (5000 // 300)
