"""One target's spectral filter in Keras: Open-Unmix's BLSTM filter, and how any filter is applied.

Spectrograms are channels-last magnitudes `(batch, frames, bins, channels)`. The joint models that
run one filter per target are in `umx_core.nn.model`; X-UMX's crossing of the filters is in
`umx_core.nn.bridge`.
"""

import keras
import numpy as np
import tensorflow as tf

from umx_core.nn import PACKAGE
from umx_core.nn.lstm import LSTMStack


def bandwidth_to_max_bin(rate, n_fft, bandwidth):
    """Number of STFT bins up to `bandwidth` Hz, as open-unmix's utils.bandwidth_to_max_bin."""
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1, endpoint=True)
    return int(np.max(np.where(freqs <= bandwidth)[0]) + 1)


def _vector(values, size, transform, default):
    """A length-`size` float32 init vector from data statistics (or the default)."""
    if values is None:
        return np.full(size, default, np.float32)
    return transform(np.asarray(values, np.float32)[:size])


@keras.saving.register_keras_serializable(package=PACKAGE)
class BLSTMSpectralFilterLayer(keras.layers.Layer):
    """Open-Unmix's spectral filter: mixture magnitude in, one target's magnitude out.

    crop to `max_bin` -> `(x + input_mean) * input_scale` -> fc1 -> BN -> tanh -> LSTM stack
    -> concat(skip, lstm) -> fc2 -> BN -> ReLU -> fc3 -> BN -> `* output_scale + output_mean`
    -> ReLU -> `* mixture`.

    Args:
        nb_bins: input (and output) frequency bins, `n_fft // 2 + 1`.
        nb_channels: audio channels of the magnitude.
        hidden_size: width of the bottleneck; each LSTM direction has `hidden_size // 2` units.
        nb_layers: LSTM layers.
        unidirectional: a causal, forward-only LSTM with `hidden_size` units.
        max_bin: bins the network looks at (None: all); see `bandwidth_to_max_bin`.
        input_mean, input_scale: per-bin data mean and standard deviation of the training
            mixtures; the layer stores `-mean` and `1/scale`, as open-unmix.

    Call args:
        mix: float32 `(batch, frames, nb_bins, nb_channels)` mixture magnitude.
        lengths: optional int32 `(batch,)` valid frames of zero-padded sequences.
        offsets, width: optional int32 `(batch,)` and int: only frames `offsets[b] .. offsets[b] + width`
            of each sequence go through fc2/fc3 and the mask (the others only gave the LSTM context),
            so the output has `width` frames (`centre_frames`).
    Returns:
        float32 `(batch, frames or width, nb_bins, nb_channels)` target magnitude.
    """

    def __init__(self, nb_bins=2049, nb_channels=2, hidden_size=512, nb_layers=3, unidirectional=False, max_bin=None,
                 input_mean=None, input_scale=None, **kwargs):
        super().__init__(**kwargs)
        self.nb_bins = int(nb_bins)
        self.nb_channels = int(nb_channels)
        self.hidden_size = int(hidden_size)
        self.nb_layers = int(nb_layers)
        self.unidirectional = bool(unidirectional)
        self.max_bin = int(max_bin) if max_bin else self.nb_bins
        self._input_mean = _vector(input_mean, self.max_bin, lambda m: -m, 0.0)
        self._input_scale = _vector(input_scale, self.max_bin, lambda s: 1.0 / s, 1.0)

        def batchnorm(name):
            # torch BatchNorm1d momentum 0.1 is Keras momentum 0.9; same eps
            return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)

        self.fc1 = keras.layers.Dense(self.hidden_size, use_bias=False, name="fc1")
        self.bn1 = batchnorm("bn1")
        self.lstm = LSTMStack(
            self.hidden_size if unidirectional else self.hidden_size // 2,
            nb_layers=self.nb_layers,
            bidirectional=not unidirectional,
            dropout=0.4 if self.nb_layers > 1 else 0.0,
            name="lstm",
        )
        self.fc2 = keras.layers.Dense(self.hidden_size, use_bias=False, name="fc2")
        self.bn2 = batchnorm("bn2")
        self.fc3 = keras.layers.Dense(self.nb_bins * self.nb_channels, use_bias=False, name="fc3")
        self.bn3 = batchnorm("bn3")

    def build(self, input_shape=None):
        """Create the weights for `(batch, frames, bins, channels)` inputs."""
        def vector(name, value):
            return self.add_weight(name=name, shape=value.shape, initializer=keras.initializers.Constant(value))

        self.input_mean = vector("input_mean", self._input_mean)
        self.input_scale = vector("input_scale", self._input_scale)
        self.output_scale = vector("output_scale", np.ones(self.nb_bins, np.float32))
        self.output_mean = vector("output_mean", np.ones(self.nb_bins, np.float32))
        features = self.max_bin * self.nb_channels
        self.fc1.build((None, None, features))
        self.bn1.build((None, None, self.hidden_size))
        self.lstm.build((None, None, self.hidden_size))
        self.fc2.build((None, None, 2 * self.hidden_size))
        self.bn2.build((None, None, self.hidden_size))
        self.fc3.build((None, None, self.hidden_size))
        self.bn3.build((None, None, self.nb_bins * self.nb_channels))

    def call(self, mix, lengths=None, training=False, offsets=None, width=None):
        """Estimated magnitudes for mixture magnitudes (see the class docstring for shapes)."""
        x = self.encode(mix, training)
        x = tf.concat([x, self.lstm(x, lengths=lengths, training=training)], axis=-1)
        if offsets is not None:
            x, mix = centre_frames(x, offsets, width), centre_frames(mix, offsets, width)
        return self.decode(x, mix, training)

    def encode(self, mix, training=False):
        """The LSTM's input: `(batch, frames, hidden_size)` from `(batch, frames, nb_bins, nb_channels)`."""
        batch, nb_frames = tf.shape(mix)[0], tf.shape(mix)[1]
        x = mix[:, :, : self.max_bin, :]
        # per-bin scaler, broadcast over channels (bins are the second-to-last axis)
        x = (x + self.input_mean[:, None]) * self.input_scale[:, None]
        # flatten (bins, channels) bin-major; convert.py permutes torch's channel-major weights to this
        x = tf.reshape(x, [batch, nb_frames, self.max_bin * self.nb_channels])
        return tf.tanh(self.bn1(self.fc1(x), training=training))

    def decode(self, x, mix, training=False):
        """The target's magnitude `(batch, frames, nb_bins, nb_channels)` from the skip and LSTM
        features `(batch, frames, 2 * hidden_size)` and the mixture magnitude of the same frames."""
        batch, nb_frames = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.nn.relu(self.bn2(self.fc2(x), training=training))
        x = self.bn3(self.fc3(x), training=training)
        x = tf.reshape(x, [batch, nb_frames, self.nb_bins, self.nb_channels])
        x = x * self.output_scale[:, None] + self.output_mean[:, None]
        return tf.nn.relu(x) * mix

    def compute_output_shape(self, input_shape):
        """The input's shape: one magnitude per mixture bin and channel."""
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "nb_bins": self.nb_bins,
            "nb_channels": self.nb_channels,
            "hidden_size": self.hidden_size,
            "nb_layers": self.nb_layers,
            "unidirectional": self.unidirectional,
            "max_bin": self.max_bin,
        }


def centre_frames(x, offsets, width):
    """Frames `offsets[b] .. offsets[b] + width` of each sequence of `x` `(batch, frames, ...)`
    (indices past the end repeat the last frame): `(batch, width, ...)`."""
    index = tf.minimum(offsets[:, None] + tf.range(width)[None, :], tf.shape(x)[1] - 1)
    return tf.gather(x, index, axis=1, batch_dims=1)


def apply_filter(layer, mix, lengths=None, training=False, centre=None):
    """One target's filter on a mixture magnitude; `lengths` goes to filters that take it.

    `centre=(offsets, width)` returns only those frames (`BLSTMSpectralFilterLayer` skips
    the rest after its LSTM; another filter computes them all and they are dropped).
    """
    if isinstance(layer, BLSTMSpectralFilterLayer):
        offsets, width = centre if centre is not None else (None, None)
        return layer(mix, lengths=lengths, training=training, offsets=offsets, width=width)
    out = layer(mix, training=training)
    return out if centre is None else centre_frames(out, *centre)
