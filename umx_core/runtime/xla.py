"""A family's network on TensorFlow (CPU or GPU), compiled with XLA, weights as the programs' inputs.

Layers alike but for their weights' values (every target of a UMX model) share one traced and
compiled program that takes the weights as inputs: a run compiles one instead of one per layer, and
the persistent XLA cache holds one. With `precision` "bfloat16" the layers compute in Keras's mixed
policy on a copy of the network (weights stay float32; the caller's layers keep float32).
"""

import json

import tensorflow as tf


def compute_in(layers, precision):
    """Give `layers` and every layer inside them Keras's mixed policy for `precision`."""
    import keras

    policy = keras.DTypePolicy(f"mixed_{precision}")
    stack = list(layers)
    while stack:
        layer = stack.pop()
        layer.dtype_policy = policy
        stack.extend(getattr(layer, "_layers", []))


def structure(layers):
    """What a program over `layers` depends on besides their weights' values: their classes,
    settings, compute dtypes and the paths (below each layer's own name), shapes and dtypes of
    their weights."""

    def one(layer):
        config = {k: v for k, v in layer.get_config().items() if k != "name"}

        def below(path):  # the path below the layer's own name (which comes after its parents')
            parts = path.split("/")
            return "/".join(parts[parts.index(layer.name) + 1:] if layer.name in parts else parts)

        weights = tuple((below(v.path), tuple(v.shape), str(v.dtype)) for v in layer.weights)
        return (type(layer).__qualname__, json.dumps(config, sort_keys=True, default=str), layer.compute_dtype,
                weights)

    return tuple(one(layer) for layer in layers)


class XLARunner:
    """A network's `apply` as compiled TensorFlow programs, one per group of its layers.

    Args:
        network: the family's network: `groups` (lists of layers, each computed together),
            `apply(layers, *inputs)` (a group's float32 outputs, stacked on axis 1), and `copy()`.
        precision: "float32" or "bfloat16".
        jit_compile: compile with XLA (else graph mode).

    Called inside the family's own traced program (`in_graph`): tensors in, the groups' outputs
    concatenated on axis 1 out.
    """

    in_graph = True
    runtime = "xla"

    def __init__(self, network, precision="float32", jit_compile=True):
        if precision != "float32":
            network = network.copy()
            compute_in([layer for group in network.groups for layer in group], precision)
        self.network, self.precision = network, precision
        programs = {}
        self.programs = []  # (program, weights) per group
        for group in network.groups:
            key = structure(group)
            if key not in programs:
                programs[key] = tf.function(self._runner(group), jit_compile=jit_compile, autograph=False)
            self.programs.append((programs[key], tuple(w for layer in group for w in layer.weights)))

    def _runner(self, template):
        import keras

        weights = [w for layer in template for w in layer.weights]

        def run(values, *inputs):
            with keras.StatelessScope(state_mapping=list(zip(weights, values))):
                return tf.cast(self.network.apply(template, *inputs), tf.float32)

        return run

    def __call__(self, *inputs):
        """Every group's outputs, concatenated on axis 1."""
        return tf.concat([program([tf.convert_to_tensor(w) for w in weights], *inputs)
                          for program, weights in self.programs], axis=1)
