"""A stacked (bi)directional LSTM with torch.nn.LSTM's equations and weight layout.

Why not `keras.layers.LSTM`: on CPU it runs a generic per-step loop, several times slower
than torch's (docs/benchmarks.md, "Separator speed"). Here the input
projection of every frame is one matmul for both directions, and one loop step
advances the forward and the backward direction together with a batched matmul.
The backward direction reverses each sequence within its own length
(`tf.reverse_sequence`), so zero-padded batches give the same outputs as
unpadded sequences.
"""

import keras
import tensorflow as tf


class LSTMStack(keras.layers.Layer):
    """`nb_layers` LSTM layers, bidirectional or not, dropout between layers when training.

    Gate order and equations are torch's (i, f, g, o); `bias` holds b_ih + b_hh.

    Call args:
        inputs: float32 `(batch, frames, features)`.
        lengths: optional int32 `(batch,)` valid frames per sequence (default: all).
        training: dropout between layers when True.
    Returns:
        float32 `(batch, frames, directions * units)`, forward then backward features.
    """

    def __init__(self, units, nb_layers=3, bidirectional=True, dropout=0.4, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.nb_layers = int(nb_layers)
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.directions = 2 if bidirectional else 1

    def build(self, input_shape):
        """Create the kernels, recurrent kernels and biases of every layer and direction."""
        features = int(input_shape[-1])
        gates = 4 * self.units
        self.kernels, self.recurrent_kernels, self.biases = [], [], []
        for layer in range(self.nb_layers):
            in_features = features if layer == 0 else self.directions * self.units
            # torch initialises every LSTM weight uniformly in +-1/sqrt(hidden)
            init = keras.initializers.RandomUniform(-(self.units**-0.5), self.units**-0.5)
            self.kernels.append(
                self.add_weight(name=f"kernel_{layer}", shape=(in_features, self.directions * gates), initializer=init)
            )
            self.recurrent_kernels.append(
                self.add_weight(
                    name=f"recurrent_kernel_{layer}", shape=(self.directions, self.units, gates), initializer=init
                )
            )
            self.biases.append(self.add_weight(name=f"bias_{layer}", shape=(self.directions * gates,),
                                               initializer=init))

    def _layer(self, x, lengths, layer):
        """One layer over `x` `(batch, frames, features)` -> `(batch, frames, directions*units)`."""
        batch = tf.shape(x)[0]
        nb_frames = tf.shape(x)[1]
        gates = 4 * self.units
        # input projection of every frame for both directions at once
        proj = tf.einsum("btf,fg->btg", x, self.kernels[layer]) + self.biases[layer]
        proj = tf.reshape(proj, [batch, nb_frames, self.directions, gates])
        if self.bidirectional:
            backward = tf.reverse_sequence(proj[:, :, 1], lengths, seq_axis=1, batch_axis=0)
            proj = tf.stack([proj[:, :, 0], backward], axis=2)
        # time-major for the loop: (frames, directions, batch, gates)
        proj = tf.transpose(proj, [1, 2, 0, 3])
        recurrent = tf.convert_to_tensor(self.recurrent_kernels[layer])  # (directions, units, gates)

        def step(t, h, c, outputs):
            z = proj[t] + tf.matmul(h, recurrent)  # (directions, batch, gates)
            i, f, g, o = tf.split(z, 4, axis=-1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            return t + 1, h, c, outputs.write(t, h)

        zeros = tf.zeros([self.directions, batch, self.units], x.dtype)
        outputs = tf.TensorArray(x.dtype, size=nb_frames, element_shape=[self.directions, None, self.units])
        _, _, _, outputs = tf.while_loop(
            lambda t, *_: t < nb_frames, step, (tf.constant(0), zeros, zeros, outputs), parallel_iterations=1,
            maximum_iterations=nb_frames,
        )
        out = tf.transpose(outputs.stack(), [2, 0, 1, 3])  # (batch, frames, directions, units)
        if self.bidirectional:
            backward = tf.reverse_sequence(out[:, :, 1], lengths, seq_axis=1, batch_axis=0)
            out = tf.stack([out[:, :, 0], backward], axis=2)
        return tf.reshape(out, [batch, nb_frames, self.directions * self.units])

    def call(self, inputs, lengths=None, training=False):
        """Run the stack over `(batch, frames, features)`; `lengths` masks padded frames."""
        x = tf.convert_to_tensor(inputs)
        if lengths is None:
            lengths = tf.fill([tf.shape(x)[0]], tf.shape(x)[1])
        lengths = tf.cast(lengths, tf.int32)
        for layer in range(self.nb_layers):
            if layer > 0 and training and self.dropout > 0:
                x = tf.nn.dropout(x, rate=self.dropout)
            x = self._layer(x, lengths, layer)
        return x

    def compute_output_shape(self, input_shape):
        """`(batch, frames, 2 * hidden)` (bidirectional) or `(batch, frames, hidden)`."""
        return tuple(input_shape[:-1]) + (self.directions * self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "nb_layers": self.nb_layers,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout,
        }
