"""The Separator against openunmix's Separator with the same random weights."""

import itertools

import numpy as np
import pytest
import torch

from tests.conftest import random_openunmix_targets, rel_error, state_dicts
from umx_core import chunking
from umx_core.pretrained import separator_from_openunmix
from umx_core.errors import UMXError


@pytest.fixture(scope="module")
def stereo_models():
    return random_openunmix_targets(nb_channels=2)


@pytest.fixture(scope="module")
def mono_models():
    return random_openunmix_targets(nb_channels=1)


def reference(models, audio, **kwargs):
    from openunmix.model import Separator

    sep = Separator(models, **kwargs).eval()
    with torch.no_grad():
        return sep(torch.from_numpy(audio)).numpy()


GRID = list(itertools.product([0, 1, 2], [False, True], [False, True]))


@pytest.mark.parametrize("niter,softmask,residual", GRID)
@pytest.mark.parametrize("channels", [2, 1])
def test_parity_with_openunmix(stereo_models, mono_models, niter, softmask, residual, channels):
    models = stereo_models if channels == 2 else mono_models
    audio = np.random.default_rng(niter).standard_normal((1, channels, 3 * 44100 + 17)).astype(np.float32) * 0.3
    kwargs = dict(niter=niter, softmask=softmask, residual=residual, nb_channels=channels)
    ours = separator_from_openunmix(state_dicts(models), **kwargs)(audio)
    assert rel_error(ours, reference(models, audio, **kwargs)) < 1e-4


def test_parity_across_em_windows_and_batch(stereo_models):
    # 20 s = 862 frames: three EM windows of 300 frames, two tracks in the batch;
    # one chunk for the whole track (segment=None) must equal open-unmix exactly
    audio = np.random.default_rng(5).standard_normal((2, 2, 20 * 44100)).astype(np.float32) * 0.3
    ours = separator_from_openunmix(state_dicts(stereo_models), niter=1, segment=900)(audio)
    assert rel_error(ours, reference(stereo_models, audio, niter=1)) < 1e-4


def test_segmented_long_input_within_tolerance(stereo_models):
    """Chunks of 300 frames with 64 context frames: the documented segmenting tolerance."""
    audio = np.random.default_rng(6).standard_normal((1, 2, 20 * 44100)).astype(np.float32) * 0.3
    sep = separator_from_openunmix(state_dicts(stereo_models), niter=1)
    assert len(sep.engine.geometry.layout(audio.shape[-1]).chunks) == 3
    err = rel_error(sep(audio), reference(stereo_models, audio, niter=1))
    assert err < 1e-3
    # with too little context the LSTM's truncation shows: the tolerance test can fail
    short = separator_from_openunmix(state_dicts(stereo_models), niter=1, context=0)(audio)
    assert rel_error(short, reference(stereo_models, audio, niter=1)) > err


def test_batching_chunks_does_not_change_the_result(stereo_models):
    audio = np.random.default_rng(7).standard_normal((2, 2, 15 * 44100)).astype(np.float32) * 0.3
    big = separator_from_openunmix(state_dicts(stereo_models), niter=1, segment=300, batch_frames=10_000)(audio)
    small = separator_from_openunmix(state_dicts(stereo_models), niter=1, segment=300, batch_frames=1)(audio)
    np.testing.assert_allclose(big, small, atol=1e-5)
    # 6 chunks of 428 frames: 10,000 frames pad a batch of 6 to 8 empty-ended rows, whose EM runs as
    # two halves of 4; 3 chunks a call keep batches of 3 rows (EM halves of 2 and 1); 1: one row, one EM
    threes = separator_from_openunmix(state_dicts(stereo_models), niter=1, segment=300, batch_frames=3 * 428)
    assert chunking.rows_for(3, chunking.chunks_per_call(428, threes.batch_frames)) == 3
    np.testing.assert_allclose(threes(audio), small, atol=1e-5)


def test_stems_sum_to_the_mixture_with_residual(stereo_models):
    audio = np.random.default_rng(8).standard_normal((1, 2, 44100)).astype(np.float32) * 0.3
    sep = separator_from_openunmix(state_dicts(stereo_models), niter=0, residual=True)
    stems = sep(audio)
    assert stems.shape == (1, 4, 2, 44100)
    assert rel_error(stems.sum(axis=1), audio) < 1e-5


def test_mono_audio_into_a_stereo_model(stereo_models):
    mono = np.random.default_rng(9).standard_normal((1, 1, 44100)).astype(np.float32) * 0.3
    sep = separator_from_openunmix(state_dicts(stereo_models))
    np.testing.assert_allclose(sep(mono), sep(np.repeat(mono, 2, axis=1)), atol=1e-6)


def test_to_dict_names_and_aggregates(stereo_models):
    sep = separator_from_openunmix(state_dicts(stereo_models), residual=True)
    estimates = np.random.default_rng(1).standard_normal((2, 4, 2, 100)).astype(np.float32)
    named = sep.to_dict(estimates)
    assert list(named) == ["vocals", "drums", "bass", "residual"]
    np.testing.assert_array_equal(named["residual"], estimates[:, 3])
    agg = sep.to_dict(estimates, aggregate_dict={"vocals": ["vocals"], "accompaniment": ["drums", "bass", "residual"]})
    assert list(agg) == ["vocals", "accompaniment"]
    np.testing.assert_allclose(agg["accompaniment"], estimates[:, 1:].sum(axis=1), rtol=1e-6)
    with pytest.raises(UMXError, match="guitar"):
        sep.to_dict(estimates, aggregate_dict={"x": ["guitar"]})


@pytest.mark.parametrize(
    "shape,fill,message",
    [((2, 44100), 0.1, "shape"), ((1, 3, 44100), 0.1, "3 channels"), ((1, 2, 1000), 0.1, "too short|samples"),
     ((1, 2, 44100), np.nan, "NaN")],
)
def test_bad_audio_raises_one_clear_error(stereo_models, shape, fill, message):
    sep = separator_from_openunmix(state_dicts(stereo_models))
    with pytest.raises(UMXError, match=message):
        sep(np.full(shape, fill, np.float32))


def test_bad_settings_raise(stereo_models):
    one = {"vocals": state_dicts(stereo_models)["vocals"]}
    with pytest.raises(UMXError, match="two sources"):
        separator_from_openunmix(one, niter=1)
    separator_from_openunmix(one, niter=1, residual=True)
    with pytest.raises(UMXError, match="multiple"):
        separator_from_openunmix(one, segment=450)
    with pytest.raises(UMXError, match="filterbank"):
        separator_from_openunmix(one, filterbank="asteroid")


def test_whole_track_em_window_matches_openunmix(stereo_models):
    # wiener_win_len=None: EM over the whole track, one chunk, graph mode (no XLA shapes)
    audio = np.random.default_rng(10).standard_normal((1, 2, 9 * 44100)).astype(np.float32) * 0.3
    sep = separator_from_openunmix(state_dicts(stereo_models), niter=1, wiener_win_len=None)
    assert sep.segment is None and not sep.jit_compile
    assert rel_error(sep(audio), reference(stereo_models, audio, niter=1, wiener_win_len=None)) < 1e-4


def test_graph_mode_equals_xla(stereo_models):
    audio = np.random.default_rng(11).standard_normal((2, 2, 12 * 44100)).astype(np.float32) * 0.3
    xla = separator_from_openunmix(state_dicts(stereo_models), niter=1, residual=True)(audio)
    graph = separator_from_openunmix(state_dicts(stereo_models), niter=1, residual=True, jit_compile=False)(audio)
    assert rel_error(graph, xla) < 1e-5


def test_bfloat16_precision_computes_the_network_in_bfloat16_and_leaves_the_model_alone(stereo_models):
    from umx_core.separator import Separator

    audio = (np.random.default_rng(3).standard_normal((1, 2, 44100 * 4)) * 0.1).astype(np.float32)
    full = separator_from_openunmix(state_dicts(stereo_models), niter=1)
    half = Separator(full.model, niter=1, precision="bfloat16")
    expected = reference(stereo_models, audio, niter=1)
    got = half(audio)
    assert got.dtype == np.float32 and half.precision == "bfloat16"
    # bfloat16 keeps 8 bits of mantissa: close to openunmix, but not float32's agreement
    assert 1e-5 < rel_error(got, expected) < 3e-2
    assert rel_error(full(audio), expected) < 1e-5  # the float32 model it was built from is untouched
    assert {layer.dtype_policy.name for layer in full.model.joint.filter_layers} == {"float32"}
    with pytest.raises(UMXError, match="precision must be one of float32, bfloat16"):
        Separator(full.model, precision="float16")


def test_batch_frames_come_from_the_device_when_not_given(monkeypatch):
    """No GPU here: the CPU default; a (pretended) 16 GiB GPU: what `batch_frames_for` gives for the model."""
    from umx_core import Separator, chunking, devices
    from umx_core.nn.spectral_filter import BLSTMSpectralFilterLayer

    filters = {t: BLSTMSpectralFilterLayer(nb_bins=129, hidden_size=8, max_bin=64, name=t) for t in ("a", "b")}
    assert devices.accelerator_memory() is None
    assert Separator(filters, n_fft=256, n_hop=64).batch_frames == chunking.CPU_BATCH_FRAMES
    assert Separator(filters, n_fft=256, n_hop=64, batch_frames=40).batch_frames == 40
    monkeypatch.setattr(devices, "accelerator_memory", lambda: 16 << 30)
    on_gpu = Separator(filters, n_fft=256, n_hop=64).batch_frames
    assert on_gpu == chunking.batch_frames_for(16 << 30, targets=2, bins=129, channels=2) > chunking.CPU_BATCH_FRAMES


def test_filters_alike_share_one_program_each_with_its_own_weights():
    """Targets whose filters differ only in their weights' values share one traced program; a filter
    of another size gets its own; each target's estimate is its own layer's."""
    from umx_core import Separator
    from umx_core.nn.spectral_filter import BLSTMSpectralFilterLayer, apply_filter

    import tensorflow as tf

    sizes = {"a": 8, "b": 8, "c": 12}
    filters = {t: BLSTMSpectralFilterLayer(nb_bins=129, hidden_size=h, max_bin=64, name=t) for t, h in sizes.items()}
    sep = Separator(filters, n_fft=256, n_hop=64, wiener_win_len=20, context=4)
    mag = tf.constant(np.random.default_rng(9).random((3, 28, 129, 2)), tf.float32)
    for seed, layer in enumerate(filters.values()):  # distinct weights, batch-norm statistics included
        rng = np.random.default_rng(seed)
        layer.set_weights([(np.abs(rng.standard_normal(w.shape)) + 0.5 if "variance" in w.path
                            else rng.standard_normal(w.shape) * 0.3).astype(np.float32) for w in layer.weights])
    programs = [program for program, _ in sep.engine.program.runner.programs]
    assert programs[0] is programs[1] and programs[2] is not programs[0]
    lengths, offsets = tf.constant([28, 28, 20], tf.int32), tf.constant([4, 4, 4], tf.int32)
    estimates = [program([tf.convert_to_tensor(w) for w in weights], mag, lengths, offsets, 20).numpy()[:, 0]
                 for program, weights in sep.engine.program.runner.programs]
    for estimate, layer in zip(estimates, filters.values()):
        expected = apply_filter(layer, mag, lengths, centre=(offsets, 20)).numpy()
        np.testing.assert_allclose(estimate, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(estimates[0] - estimates[1]).max() > 1e-3  # same program, different weights
