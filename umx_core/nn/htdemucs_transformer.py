"""Hybrid Transformer Demucs's cross-domain transformer: its position embeddings, multi-head
attention with torch's packed projection layout, and the self- and cross-attention layers.

Tokens are channels-last `(batch, tokens, channels)`. The frequency branch's `(batch, frames, bins,
channels)` becomes `frames * bins` tokens, frame-major (demucs's `(t1 fr)` order), by a reshape alone.
"""

import math

import keras
import tensorflow as tf

from umx_core.nn.htdemucs_ops import Float32Layer, GroupNorm, LayerScale, apply_optional, float32, gelu, heavy
from umx_core.nn.htdemucs_spec import dims


def _phase(positions, dim, max_period):
    # demucs's 1-D embedding divides by max_period ** (i / (dim / 2 - 1)), not the usual 2i / dim
    half = dim // 2
    exponent = tf.range(half, dtype=tf.float32) / float(half - 1)
    # torch's float32 pow is (nearly always) the correctly rounded one; TF's float32 pow is not
    periods = tf.cast(tf.pow(tf.constant(max_period, tf.float64), tf.cast(exponent, tf.float64)), tf.float32)
    return positions[:, None] / periods[None, :]


def sin_embedding(length, dim, max_period=10000.0):
    """demucs's `create_sin_embedding` (shift 0): cosines then sines of each position.

    Args:
        length: positions (int or scalar int tensor).
        dim: channels, even.
        max_period: the longest period.
    Returns:
        float32 `(length, dim)`.
    """
    phase = _phase(tf.range(length, dtype=tf.float32), dim, max_period)
    return tf.concat([tf.cos(phase), tf.sin(phase)], axis=-1)


def cape_embedding(length, dim, mean_normalize=True, max_period=10000.0):
    """demucs's `create_sin_embedding_cape` at inference (no augmentation): as `sin_embedding`, with
    the positions centred on their mean when `mean_normalize`.

    Returns:
        float32 `(length, dim)`.
    """
    positions = tf.range(length, dtype=tf.float32)
    if mean_normalize:
        positions -= tf.reduce_mean(positions)
    phase = _phase(positions, dim, max_period)
    return tf.concat([tf.cos(phase), tf.sin(phase)], axis=-1)


def sin_embedding_2d(dim, bins, frames, max_period=10000.0):
    """demucs's `create_2d_sin_embedding` in token order: the first half of the channels encodes the
    frame, the second half the bin, each as interleaved sine and cosine.

    Args:
        dim: channels, a multiple of 4.
        bins, frames: the grid (ints or scalar int tensors).
        max_period: the longest period.
    Returns:
        float32 `(frames * bins, dim)`, token `t * bins + f` for frame `t` and bin `f`.
    """
    half = dim // 2
    rates = tf.exp(tf.range(0, half, 2, dtype=tf.float32) * -(math.log(max_period) / half))

    def interleaved(count):
        angle = tf.range(count, dtype=tf.float32)[:, None] * rates[None, :]
        # sin of rate k in channel 2k, cos in 2k + 1
        return tf.reshape(tf.stack([tf.sin(angle), tf.cos(angle)], axis=-1), [count, half])

    by_frame = tf.broadcast_to(interleaved(frames)[:, None, :], [frames, bins, half])
    by_bin = tf.broadcast_to(interleaved(bins)[None, :, :], [frames, bins, half])
    return tf.reshape(tf.concat([by_frame, by_bin], axis=-1), [frames * bins, dim])


class Attention(keras.layers.Layer):
    """Multi-head attention with torch.nn.MultiheadAttention's weights: one packed input projection
    (queries, keys, values stacked) and an output projection. Its matmuls and softmax compute in the
    policy's dtype (oneDNN's bfloat16 softmax sums in float32).

    Call args:
        query: `(batch, queries, dim)`.
        context: `(batch, keys, dim)`, the keys and values' source.
    Returns:
        float32 `(batch, queries, dim)`.
    """

    def __init__(self, dim, heads, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.heads = int(dim), int(heads)
        self.in_kernel = self.add_weight(shape=(dim, 3 * dim), initializer="glorot_uniform", name="in_kernel")
        self.in_bias = self.add_weight(shape=(3 * dim,), initializer="zeros", name="in_bias")
        self.out_kernel = self.add_weight(shape=(dim, dim), initializer="glorot_uniform", name="out_kernel")
        self.out_bias = self.add_weight(shape=(dim,), initializer="zeros", name="out_bias")
        self.built = True  # every weight exists now: nothing waits for a first call

    def _heads(self, x, part):
        """Project `x` with part `part` (0 query, 1 key, 2 value) -> `(batch, heads, tokens, dim / heads)`."""
        start = part * self.dim
        x = tf.einsum("btc,cd->btd", x, self.in_kernel[:, start : start + self.dim]) + \
            self.in_bias[start : start + self.dim]
        batch, tokens, _ = dims(x)
        x = tf.reshape(x, [batch, tokens, self.heads, self.dim // self.heads])
        return tf.transpose(x, [0, 2, 1, 3])  # heads ahead of tokens for the batched matmuls

    def call(self, query, context):
        """Attend from `query` to `context` (see the class docstring)."""
        q, k, v = self._heads(query, 0), self._heads(context, 1), self._heads(context, 2)
        scale = (self.dim // self.heads) ** -0.5
        # scaling the queries spares a pass over the scores `(batch, heads, queries, keys)`, the largest
        # tensor; float32 does so only where that is exact (a power of two, as htdemucs's 64 channels a
        # head give), so its results do not change
        if q.dtype != tf.float32 or math.frexp(scale)[0] == 0.5:
            scores = tf.matmul(q * scale, k, transpose_b=True)
        else:
            scores = tf.matmul(q, k, transpose_b=True) * scale
        # oneDNN's bfloat16 softmax sums in float32 inside: a float32 softmax's weights, rounded once,
        # without casting the scores there and back
        out = tf.matmul(tf.nn.softmax(scores, axis=-1), v)  # (batch, heads, queries, dim / heads)
        batch, _, tokens, _ = dims(out)
        out = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [batch, tokens, self.dim])  # tokens back ahead of heads
        return float32(tf.einsum("btc,cd->btd", out, self.out_kernel) + self.out_bias)


def dense(units_in, units_out):
    """A built Dense layer with a float32 output (`umx_core.nn.htdemucs_ops.heavy`)."""
    return heavy("dense", units_in, units_out)


def sequence_norm(dim, groups):
    """demucs's transformer norm: LayerNorm over channels, or with `groups` a GroupNorm over every
    token and channel of a group (its MyGroupNorm)."""
    return GroupNorm(dim, int(groups), axes=(1,)) if groups else GroupNorm(dim)


class TransformerLayer(Float32Layer):
    """demucs's MyTransformerEncoderLayer (self-attention) or CrossTransformerEncoderLayer.

    Pre-norm (`norm_first`): attention of the normalised tokens (a cross layer normalises its
    context with its own norm), LayerScale, residual; feed-forward of the normalised sum, LayerScale,
    residual; then a GroupNorm(1) over all tokens and channels when `norm_out`. Post-norm: the norms
    after each residual sum instead.

    Args:
        dim, heads, hidden: width, attention heads, feed-forward width.
        cross: attend to another sequence (the other branch's tokens).
        norm_first, norm_out, group_norm, layer_scale: as demucs's `t_norm_first`, `t_norm_out`,
            `t_group_norm`, `t_layer_scale`.
        use_gelu: exact GELU in the feed-forward (ReLU otherwise).

    Call args:
        x: float32 `(batch, tokens, dim)`.
        context: float32 `(batch, other_tokens, dim)` for a cross layer, else None.
    Returns:
        float32 `(batch, tokens, dim)`.
    """

    def __init__(self, dim, heads, hidden, cross=False, norm_first=True, norm_out=True, group_norm=False,
                 layer_scale=True, use_gelu=True, **kwargs):
        super().__init__(**kwargs)
        self.cross, self.norm_first, self.use_gelu = cross, norm_first, use_gelu
        self.attention = Attention(dim, heads)
        self.linear1, self.linear2 = dense(dim, hidden), dense(hidden, dim)
        self.norms = [sequence_norm(dim, group_norm) for _ in range(3 if cross else 2)]
        self.norm_out = GroupNorm(dim, int(norm_out), axes=(1,)) if norm_first and norm_out else None
        self.gamma_1 = LayerScale(dim) if layer_scale else None
        self.gamma_2 = LayerScale(dim) if layer_scale else None
        self.built = True  # every weight exists now: nothing waits for a first call

    def _feed_forward(self, x):
        hidden = self.linear1(x)
        return self.linear2(gelu(hidden) if self.use_gelu else tf.nn.relu(hidden))

    def call(self, x, context=None):
        """Run the layer (see the class docstring)."""
        if self.norm_first:
            query = self.norms[0](x)
            keys = self.norms[1](context) if self.cross else query
            x = x + apply_optional(self.gamma_1, self.attention(query, keys))
            x = x + apply_optional(self.gamma_2, self._feed_forward(self.norms[-1](x)))
            return apply_optional(self.norm_out, x)
        x = self.norms[0](x + apply_optional(self.gamma_1, self.attention(x, context if self.cross else x)))
        return self.norms[1](x + apply_optional(self.gamma_2, self._feed_forward(x)))


class CrossTransformerEncoder(Float32Layer):
    """demucs's CrossTransformerEncoder: both branches' tokens, position-embedded, through layers that
    alternate self-attention in each branch with cross-attention between them.

    Args:
        dim, heads, hidden, num_layers: width, heads, feed-forward width, layers per branch.
        emb: the time branch's position embedding, "sin", "scaled" (a learnt table of
            `max_positions`) or "cape"; the frequency branch always has the 2-D sine embedding.
        cross_first: layer 0 is a cross layer (else layers 1, 3, ... are).
        norm_in, norm_in_group: a LayerNorm (or a GroupNorm of `norm_in_group` groups) on the input.
        weight_pos_embed, max_period, cape_mean_normalize: as demucs's `t_*` arguments.
        layer_kwargs: `TransformerLayer` arguments (norm_first, norm_out, group_norm, layer_scale, use_gelu).

    Call args:
        x: float32 `(batch, frames, bins, dim)`, the frequency branch.
        xt: float32 `(batch, steps, dim)`, the time branch.
    Returns:
        `(x, xt)`, the same shapes.
    """

    def __init__(self, dim, heads, hidden, num_layers, emb="sin", cross_first=False, max_positions=10000,
                 norm_in=True, norm_in_group=False, weight_pos_embed=1.0, max_period=10000.0,
                 cape_mean_normalize=True, layer_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.emb, self.weight_pos_embed, self.max_period = dim, emb, weight_pos_embed, max_period
        self.cape_mean_normalize = cape_mean_normalize
        self.cross_parity = 0 if cross_first else 1
        if norm_in:
            self.norm_in, self.norm_in_t = GroupNorm(dim), GroupNorm(dim)
        elif norm_in_group:
            self.norm_in, self.norm_in_t = sequence_norm(dim, norm_in_group), sequence_norm(dim, norm_in_group)
        else:
            self.norm_in = self.norm_in_t = None
        self.layers, self.layers_t = [], []
        for index in range(num_layers):
            cross = index % 2 == self.cross_parity
            self.layers.append(TransformerLayer(dim, heads, hidden, cross=cross, **(layer_kwargs or {})))
            self.layers_t.append(TransformerLayer(dim, heads, hidden, cross=cross, **(layer_kwargs or {})))
        # demucs's ScaledEmbedding of positions; the table holds its weight times its boost
        self.position_table = self.add_weight(shape=(max_positions, dim), initializer="zeros", name="positions") \
            if emb == "scaled" else None
        self.built = True  # every weight exists now: nothing waits for a first call

    def _time_embedding(self, steps):
        if self.emb == "scaled":
            return self.position_table[:steps]
        if self.emb == "cape":
            return cape_embedding(steps, self.dim, self.cape_mean_normalize, self.max_period)
        return sin_embedding(steps, self.dim, self.max_period)

    def call(self, x, xt):
        """Run both branches through the layers (see the class docstring)."""
        batch, frames, bins, dim = dims(x)
        tokens = tf.reshape(x, [batch, frames * bins, dim])  # frame-major tokens, demucs's (t1 fr)
        tokens = apply_optional(self.norm_in, tokens) + \
            self.weight_pos_embed * sin_embedding_2d(self.dim, bins, frames, self.max_period)
        xt = apply_optional(self.norm_in_t, xt) + self.weight_pos_embed * self._time_embedding(dims(xt)[1])
        for layer, layer_t in zip(self.layers, self.layers_t):
            if layer.cross:
                tokens, xt = layer(tokens, xt), layer_t(xt, tokens)  # time attends to the old tokens
            else:
                tokens, xt = layer(tokens), layer_t(xt)
        return tf.reshape(tokens, [batch, frames, bins, dim]), xt
