"""Small pieces Hybrid Transformer Demucs's convolutional layers and transformer share: torch's
exact GELU, GLU, GroupNorm and LayerNorm (one layer, over chosen axes), LayerScale.

Tensors are channels-last: the channel axis is the last one.
"""

import keras
import tensorflow as tf

from umx_core.nn.htdemucs_spec import dims


def gelu(x):
    """The exact (erf) GELU, torch's default."""
    return tf.nn.gelu(x, approximate=False)


def glu(x):
    """Gated linear unit on the last axis: first half times the sigmoid of the second."""
    value, gate = tf.split(x, 2, axis=-1)
    return value * tf.sigmoid(gate)


def _mean(x, axes):
    # one axis at a time, innermost first: several short float32 sums lose less than one long one
    for axis in sorted(axes, reverse=True):
        x = tf.reduce_mean(x, axis=axis, keepdims=True)
    return x


def moments(x, axes):
    """Mean and (biased) variance over `axes`, summed one axis at a time.

    One float32 sum over all of a GroupNorm's elements (hundreds of thousands in the released
    models' DConv branches) is off by about 1e-5 relative where torch's cascaded sums are not: the
    released geometry's end-to-end parity fell to 97 dB (113 dB summing per axis, as here).

    Args:
        x: float32 tensor.
        axes: the axes to reduce.
    Returns:
        `(mean, variance)`, each with `x`'s rank (size 1 on `axes`).
    """
    mean = _mean(x, axes)
    return mean, _mean(tf.square(x - mean), axes)


class GroupNorm(keras.layers.Layer):
    """torch's GroupNorm (and LayerNorm) on a channels-last tensor, over chosen axes.

    Each group of `channels // groups` channels is normalised over `axes` and its own channels;
    `axes=()` with one group is a LayerNorm over the channels.

    Args:
        channels: size of the last axis.
        groups: number of channel groups.
        axes: the non-channel axes that share statistics, e.g. `(1, 2)` for demucs's GroupNorm on
            `(batch, frames, bins, channels)`, `(1,)` for one per bin row.
        epsilon: added to the variance (torch's 1e-5).

    Call args:
        x: float32 `(batch, ..., channels)`.
    Returns:
        float32, same shape.
    """

    def __init__(self, channels, groups=1, axes=(), epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.groups, self.axes, self.epsilon = int(channels), int(groups), tuple(axes), epsilon
        self.gamma = self.add_weight(shape=(self.channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(self.channels,), initializer="zeros", name="beta")
        self.built = True  # every weight exists now: nothing waits for a first call

    def call(self, x):
        """Normalise `x` (see the class docstring)."""
        shape = dims(x)
        grouped = tf.reshape(x, shape[:-1] + [self.groups, self.channels // self.groups])
        mean, variance = moments(grouped, [*self.axes, len(shape)])
        normed = (grouped - mean) * tf.math.rsqrt(variance + self.epsilon)
        return tf.reshape(normed, shape) * self.gamma + self.beta


class LayerScale(keras.layers.Layer):
    """A learnt scale per channel (demucs's LayerScale) on the last axis.

    Call args:
        x: float32 `(..., channels)`.
    Returns:
        float32, same shape.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.scale = self.add_weight(shape=(int(channels),), initializer="ones", name="scale")
        self.built = True  # every weight exists now: nothing waits for a first call

    def call(self, x):
        """Scale `x` per channel."""
        return x * self.scale


def apply_optional(layer, x):
    """`layer(x)`, or `x` itself where the layer is absent (None)."""
    return x if layer is None else layer(x)
