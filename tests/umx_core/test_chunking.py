"""Chunk planning (umx_core/chunking.py): coverage, context and the window envelope."""

import numpy as np
import pytest
import torch

from umx_core import chunking


@pytest.mark.parametrize("nb_frames,segment,context", [(862, 300, 64), (300, 300, 64), (301, 300, 64),
                                                       (1000, 600, 10), (57, None, 64), (5, 300, 0)])
def test_centres_cover_every_frame_once_with_context_inside_the_track(nb_frames, segment, context):
    chunks = chunking.plan(nb_frames, segment, context)
    covered = np.zeros(nb_frames, int)
    for c in chunks:
        covered[c.start : c.start + c.centre] += 1
        assert 0 <= c.first <= c.start and c.start + c.centre <= c.first + c.count <= nb_frames
        if len(chunks) > 1:  # context on each side, as far as the track allows
            assert c.start - c.first == min(context, c.start)
            assert c.first + c.count - (c.start + c.centre) == min(context, nb_frames - c.start - c.centre)
        assert c.count <= chunking.width(nb_frames, segment, context)
    assert (covered == 1).all()


def test_reflect_index_is_torch_reflect_padding():
    signal = torch.arange(20, dtype=torch.float32)[None, None]
    padded = torch.nn.functional.pad(signal, (6, 6), mode="reflect")[0, 0].numpy()
    index = chunking.reflect_index(3, 29, 6, 20)
    assert np.array_equal(np.arange(20, dtype=np.float32)[index], padded[3:29])


def test_normalise_divides_by_the_squared_window_sum():
    n_fft, hop, nb_frames = 16, 4, 9
    window = torch.hann_window(n_fft) ** 2
    envelope = torch.zeros(n_fft + hop * (nb_frames - 1))
    for f in range(nb_frames):
        envelope[f * hop : f * hop + n_fft] += window
    start = n_fft // 2
    out = np.ones((2, envelope.numel() - 2 * start), np.float32)
    chunking.normalise(out, nb_frames, n_fft, hop, start=start, block=7)  # blocks must not matter
    assert np.allclose(out, 1 / envelope[start:-start].numpy(), rtol=1e-6)



def test_batch_frames_for_a_device_grows_with_its_memory_and_shrinks_with_the_model():
    """More device memory: more frames per call; a model whose frames weigh more gets fewer; never
    below the CPU default, never above the cap."""
    gib = 1 << 30
    umxhq = dict(targets=4, bins=2049, channels=2)
    sizes = [chunking.batch_frames_for(g * gib, **umxhq) for g in (1, 4, 16, 40)]
    assert sizes == sorted(sizes) and sizes[0] == chunking.CPU_BATCH_FRAMES and sizes[-1] > sizes[1]
    assert chunking.batch_frames_for(16 * gib, targets=2, bins=2049, channels=2) > sizes[2]
    # half of 16 GiB over the modelled bytes per frame: the batch's share stays within the device's half
    assert sizes[2] * chunking.TENSORS_PER_FRAME * 4 * 4 * 2049 * 2 <= 8 * gib
    assert chunking.batch_frames_for(1 << 50, **umxhq) == 1 << 16


@pytest.mark.parametrize("per_call", [1, 3, 5, 8, 9, 23, 64])
def test_rows_exact_for_few_chunks_a_call_and_few_shapes_for_many(per_call):
    rows = [chunking.rows_for(n, per_call) for n in range(1, per_call + 1)]
    assert all(n <= r <= per_call for n, r in zip(range(1, per_call + 1), rows))
    if per_call <= chunking.EXACT_ROWS:
        assert rows == list(range(1, per_call + 1))  # no empty chunk computed
    else:
        # padded to powers of two: a handful of compiled shapes however large the batch
        assert all(r == per_call or r & (r - 1) == 0 for r in rows)
        assert len(set(rows)) <= per_call.bit_length() + 1 < per_call


@pytest.mark.parametrize("samples,segment,context", [(1000, 4, 2), (4097, 8, 3), (200, None, 2), (130, 4, 0)])
def test_stft_geometry_round_trip_rebuilds_the_track(samples, segment, context):
    """A program that returns each chunk's centre frames windowed twice (an STFT then an ISTFT with
    nothing between), placed and normalised as the geometry says, gives back the track: spans,
    places, the padded length and the envelope agree with each other and with torch.stft's frames."""
    n_fft, hop = 64, 16
    geometry = chunking.StftGeometry(n_fft, hop, segment, context)
    track = np.random.default_rng(samples).standard_normal((2, samples)).astype(np.float32)
    layout = geometry.layout(samples)
    frames = torch.stft(torch.from_numpy(track), n_fft, hop, window=torch.hann_window(n_fft),
                        return_complex=True).shape[-1]
    assert layout.frames == frames and all(c.count <= layout.width for c in layout.chunks)
    window = np.hanning(n_fft + 1)[:-1] ** 2
    out = np.zeros((2, layout.length), np.float32)
    for chunk in layout.chunks:
        audio = geometry.gather(lambda index: track[:, index], *geometry.span(chunk), samples)
        assert audio.shape[-1] == geometry.input_samples(chunk.count)
        stems = np.zeros((2, geometry.input_samples(layout.width)), np.float32)
        for j in range(chunk.centre):
            at = (chunk.start - chunk.first + j) * hop
            stems[:, j * hop : j * hop + n_fft] += audio[:, at : at + n_fft] * window
        stems = geometry.output(chunk, stems)
        out[:, geometry.place(chunk) : geometry.place(chunk) + stems.shape[-1]] += stems
    out = out[:, geometry.pad : geometry.pad + samples]
    geometry.normalise(out, layout, start=geometry.pad)
    np.testing.assert_allclose(out, track, atol=1e-5)
    assert geometry.too_short(n_fft // 2) and not geometry.too_short(n_fft // 2 + 1)
