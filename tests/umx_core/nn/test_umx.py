"""The end-to-end UMX model: equals the Separator; .keras and SavedModel round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import random_openunmix_targets, rel_error, state_dicts
from umx_core.pretrained import separator_from_openunmix
from umx_core.nn.umx import UMX


@pytest.fixture(scope="module")
def separator():
    return separator_from_openunmix(state_dicts(random_openunmix_targets()), niter=1, residual=True)


@pytest.fixture(scope="module")
def audio():
    return np.random.default_rng(3).standard_normal((2, 2, 2 * 44100 + 5)).astype(np.float32) * 0.3


def test_umx_equals_separator(separator, audio):
    out = separator.model(audio).numpy()
    assert out.shape == (2, 4, 2, audio.shape[-1])
    assert rel_error(out, separator(audio)) < 1e-5


def test_config_round_trip(separator, audio):
    clone = UMX.from_config(separator.model.get_config())
    clone.build()
    clone.set_weights(separator.model.get_weights())
    np.testing.assert_array_equal(clone(audio).numpy(), separator.model(audio).numpy())


def test_keras_file_round_trip(separator, audio, tmp_path):
    path = str(tmp_path / "umx.keras")
    separator.model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded(audio).numpy(), separator.model(audio).numpy())


def test_saved_model_export_takes_any_length(separator, audio, tmp_path):
    path = str(tmp_path / "saved")
    separator.model.export(path)
    reloaded = tf.saved_model.load(path)
    serve = reloaded.signatures["serving_default"]
    for length in (audio.shape[-1], 30000):
        clip = audio[:1, :, :length]
        (out,) = serve(tf.constant(clip)).values()
        np.testing.assert_allclose(out.numpy(), separator.model(clip).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(reloaded.serve(tf.constant(audio)).numpy(), separator.model(audio).numpy(),
                               rtol=1e-6, atol=1e-6)
