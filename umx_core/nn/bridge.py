"""X-UMX's bridge: the targets' BLSTM filters computed together, each reading the others.

CrossNet-Open-Unmix (Sawata et al. 2021) crosses the per-target filters of
`umx_core.nn.spectral_filter` at two points, averaging over targets; the bridge has no weights of
its own. `umx_core.nn.model.JointSpectralFilter(bridge=True)` and the chunk engine run it.
Magnitudes are channels-last `(batch, frames, bins, channels)`.
"""

import tensorflow as tf

from umx_core.nn.spectral_filter import BLSTMSpectralFilterLayer, centre_frames


def bridged_filters(layers, mix, lengths=None, training=False, centre=None):
    """X-UMX's crossing of the targets' filters (CrossNet-Open-Unmix, Sawata et al. 2021): every
    target's LSTM reads the mean of the targets' encodings, and every target's decoder reads the
    mean over targets of [its own encoding, its LSTM's output]. No weights of its own.

    Args:
        layers: `BLSTMSpectralFilterLayer`s of the same hidden size, one per target.
        mix, lengths, centre: as `umx_core.nn.spectral_filter.apply_filter`.
    Returns:
        one `(batch, frames or width, bins, channels)` magnitude per layer.
    """
    encoded = [layer.encode(mix, training) for layer in layers]
    shared = tf.add_n(encoded) / len(layers)  # the first bridge
    features = tf.add_n([tf.concat([own, layer.lstm(shared, lengths=lengths, training=training)], axis=-1)
                         for own, layer in zip(encoded, layers)]) / len(layers)  # the second bridge
    if centre is not None:
        features, mix = centre_frames(features, *centre), centre_frames(mix, *centre)
    return [layer.decode(features, mix, training) for layer in layers]


def check_bridgeable(filters):
    """ValueError unless `{target: layer}` can be bridged: BLSTM filters of one hidden size, two or more."""
    layers = list(filters.values())
    if len(layers) < 2 or not all(isinstance(layer, BLSTMSpectralFilterLayer) for layer in layers):
        raise ValueError("bridging needs two or more BLSTMSpectralFilterLayer filters")
    if len({(layer.hidden_size, layer.lstm.directions * layer.lstm.units) for layer in layers}) > 1:
        raise ValueError("bridged filters must share one hidden size")

