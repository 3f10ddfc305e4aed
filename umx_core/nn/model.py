"""Joint spectral filters: one filter per target, run on one mixture magnitude.

Spectrograms are channels-last magnitudes `(batch, frames, bins, channels)`; joint models stack
targets on a new axis: `(batch, targets, frames, bins, channels)`. The per-target filter is
`umx_core.nn.spectral_filter`; a bridged joint model crosses the filters with `umx_core.nn.bridge`.
"""

import keras
import tensorflow as tf

from umx_core.nn import PACKAGE
from umx_core.nn.bridge import bridged_filters, check_bridgeable
from umx_core.nn.spectral_filter import BLSTMSpectralFilterLayer, apply_filter


def _target_filters(targets, filter_factory, **filter_kwargs):
    """One filter layer per target name, named after the target."""
    targets = list(targets)
    if not targets:
        raise ValueError("at least one target is needed")
    if len(set(targets)) != len(targets):
        raise ValueError(f"duplicate target names in {targets}")
    factory = filter_factory or BLSTMSpectralFilterLayer
    return {name: factory(name=name, **filter_kwargs) for name in targets}


def get_joint_spectral_filter(targets, nb_bins=2049, nb_channels=2, filter_factory=None, bridge=False,
                              **filter_kwargs):
    """A functional `keras.Model` from mixture magnitude to every target's magnitude.

    Args:
        targets: target names, one or more.
        nb_bins, nb_channels: input shape `(batch, frames, nb_bins, nb_channels)`.
        filter_factory: callable `(name=..., **filter_kwargs) -> Layer` with the
            `BLSTMSpectralFilterLayer` contract; default `BLSTMSpectralFilterLayer`.
        bridge: cross the targets' filters as X-UMX does (`bridged_filters`): every target in
            one program, so every target is computed even where fewer are asked for.
        **filter_kwargs: passed to each filter (hidden_size, nb_layers, max_bin, ...).
    Returns:
        keras.Model: `(batch, frames, nb_bins, nb_channels)` -> `(batch, targets, frames, nb_bins, nb_channels)`.
    """
    if filter_factory is None:
        filter_kwargs.update(nb_bins=nb_bins, nb_channels=nb_channels)
    filters = _target_filters(targets, filter_factory, **filter_kwargs)
    mix = keras.Input((None, nb_bins, nb_channels), name="mixture_magnitude")
    if bridge:
        joint = JointSpectralFilter(list(filters), filters=filters, bridge=True, name="crossing")
        return keras.Model(mix, joint(mix), name="joint_spectral_filter")
    outputs = [keras.layers.Reshape((1, -1, nb_bins, nb_channels))(layer(mix)) for layer in filters.values()]
    stacked = outputs[0] if len(outputs) == 1 else keras.layers.Concatenate(axis=1)(outputs)
    return keras.Model(mix, stacked, name="joint_spectral_filter")


@keras.saving.register_keras_serializable(package=PACKAGE)
class JointSpectralFilter(keras.Model):
    """Subclassed joint filter: the mixture magnitude through one filter per target.

    Args:
        targets: target names, one or more.
        filters: optional `{name: Layer}` to use instead of building BLSTM filters
            (any Layer with the `BLSTMSpectralFilterLayer` contract). Bridged, they may be more
            than the targets: every filter runs, since each feeds the others, and the targets'
            estimates come out.
        filter_kwargs: `BLSTMSpectralFilterLayer` arguments when `filters` is not given.
        bridge: cross the filters as X-UMX does (`bridged_filters`).

    Call args:
        mix: float32 `(batch, frames, bins, channels)`.
        lengths: optional int32 `(batch,)` valid frames, passed to filters that take it.
    Returns:
        float32 `(batch, targets, frames, bins, channels)`.
    """

    def __init__(self, targets, filters=None, filter_kwargs=None, bridge=False, name="joint_spectral_filter", **kwargs):
        super().__init__(name=name, **kwargs)
        self.targets = list(targets)
        self.filter_kwargs = dict(filter_kwargs or {})
        self.bridge = bool(bridge)
        if filters is None:
            filters = _target_filters(self.targets, None, **self.filter_kwargs)
        elif list(filters) != self.targets and not (self.bridge and set(self.targets) <= set(filters)):
            raise ValueError(f"filters {list(filters)} do not match targets {self.targets}")
        if self.bridge:
            check_bridgeable(filters)
        self.filter_names = list(filters) if self.bridge else self.targets
        # a list, in filter order: Keras saves list items by position, which reloads reliably
        self.filter_layers = [filters[name] for name in self.filter_names]

    @property
    def filters(self):
        """`{name: filter layer}` of every filter, in order (the targets' order unless bridged)."""
        return dict(zip(self.filter_names, self.filter_layers))

    def outputs_of(self, estimates):
        """The targets' rows of `(batch, filters, ...)` estimates of every filter."""
        if self.filter_names == self.targets:
            return estimates
        return tf.gather(estimates, [self.filter_names.index(t) for t in self.targets], axis=1)

    def build(self, input_shape):
        """Create the weights for `(batch, frames, bins, channels)` inputs."""
        for layer in self.filters.values():
            if not layer.built:
                layer.build(input_shape)
        self.built = True

    def call(self, mix, lengths=None, training=False):
        """Estimated magnitudes for mixture magnitudes (see the class docstring for shapes)."""
        if self.bridge:
            return self.outputs_of(tf.stack(bridged_filters(self.filter_layers, mix, lengths, training), axis=1))
        return tf.stack([apply_filter(layer, mix, lengths, training) for layer in self.filter_layers], axis=1)

    def get_config(self):
        return {"targets": self.targets, "filter_kwargs": self.filter_kwargs, "bridge": self.bridge, "name": self.name}
