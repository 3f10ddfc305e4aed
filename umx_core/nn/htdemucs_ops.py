"""Small pieces Hybrid Transformer Demucs's convolutional layers and transformer share: torch's
exact GELU, GLU, GroupNorm and LayerNorm (one layer, over chosen axes), LayerScale, and the
layers that decide what computes in bfloat16.

Tensors are channels-last: the channel axis is the last one.

Precision: under Keras's mixed_bfloat16 policy (`umx_core.runtime.xla`'s "bfloat16") the wide linear
maps compute in bfloat16 (the convolutions, transposed convolutions and dense layers `heavy` makes
where that pays, and the attention's matmuls), each handing back float32. Every other layer is a
`Float32Layer`: norms, GELU, GLU, LayerScale, embeddings and the residual sums stay float32, so
bfloat16 rounds only a matmul's inputs, weights and output. That is also the faster split on a
CPU: oneDNN speeds up bfloat16 matmuls, not TensorFlow's elementwise ops (its bfloat16 GELU takes
twice as long): bfloat16 activations between the layers, the norms cast back, ran 15-25 % slower on
htdemucs and erred 2.3 % against 1.1 %. Under the float32 policy every cast here is the identity: the
float32 graph is unchanged.
"""

import keras
import numpy as np
import tensorflow as tf

from umx_core.nn.htdemucs_spec import dims


def float32(x):
    """`x` as float32 (itself when it is already)."""
    return tf.cast(x, tf.float32)


class Float32Layer(keras.layers.Layer):
    """A layer whose own arithmetic is float32 under any dtype policy: Keras hands it float32 inputs
    (it would round them to the compute dtype otherwise) and the weights it makes are read as float32
    (`autocast=False`). Keras layers inside it still compute in the policy's dtype."""

    @property
    def input_dtype(self):
        """float32, whatever the policy computes in."""
        return "float32"

    def add_weight(self, *args, autocast=False, **kwargs):
        """Keras's `add_weight`, the weight not cast to the compute dtype when read."""
        return super().add_weight(*args, autocast=autocast, **kwargs)


# bfloat16 pays (graph mode, oneDNN on AMX) only in layers with enough multiply-adds per output
# position (input x output channels x kernel taps): thinner ones lose to the casts around them and
# add error, so they stay float32. oneDNN's AMX bfloat16 convolution also sums inputs of few
# channels wrongly, so a layer with fewer than BFLOAT16_MIN_CHANNELS inputs stays float32 too.
BFLOAT16_MIN_WORK = 2**15
BFLOAT16_MIN_CHANNELS = 32


class _Float32Output:
    """Mixin for a Keras layer that computes in its policy's dtype: its output as float32."""

    def call(self, inputs):
        """The Keras layer's output, as float32."""
        return float32(super().call(inputs))


class Conv2D(_Float32Output, keras.layers.Conv2D):
    """Keras's Conv2D with a float32 output."""


class Conv2DTranspose(_Float32Output, keras.layers.Conv2DTranspose):
    """Keras's Conv2DTranspose with a float32 output."""


class Dense(_Float32Output, keras.layers.Dense):
    """Keras's Dense with a float32 output."""


_KINDS = {"conv": Conv2D, "conv_transpose": Conv2DTranspose, "dense": Dense}


def heavy(kind, channels_in, channels_out, kernel=1, **kwargs):
    """A built Keras Conv2D ("conv", on `(batch, frames, bins, channels)`), Conv2DTranspose or Dense
    (on `(batch, tokens, channels)`) whose output is float32: it computes in the policy's dtype where
    that pays (see `BFLOAT16_MIN_WORK`), else in float32 (made with `autocast=False`: called inside
    another layer, as the model's are, it reads its inputs and weights uncast).

    Args:
        kind: "conv", "conv_transpose" or "dense".
        channels_in, channels_out: the channels (every weight exists before a call: weights can be
            assigned first).
        kernel: the kernel shape (an int or a pair; ignored for "dense").
        **kwargs: the Keras layer's other arguments.
    """
    work = channels_in * channels_out * int(np.prod(kernel))
    autocast = channels_in >= BFLOAT16_MIN_CHANNELS and work >= BFLOAT16_MIN_WORK
    args = (channels_out,) if kind == "dense" else (channels_out, kernel)
    layer = _KINDS[kind](*args, autocast=autocast, **kwargs)
    layer.build((None, None, channels_in) if kind == "dense" else (None, None, None, channels_in))
    return layer


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


class GroupNorm(Float32Layer):
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


class LayerScale(Float32Layer):
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
