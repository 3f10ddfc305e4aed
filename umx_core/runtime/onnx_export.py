"""A model's spectral filters as one ONNX graph, written from the layers' weights with ONNX's own ops.

The graph holds what runs per chunk between the STFT and EM: every target's filter
(`BLSTMSpectralFilterLayer`: input scaling, fc1 + batch norm + tanh, the (bi)LSTM stack as ONNX
`LSTM` ops with `sequence_lens`, fc2, fc3, the output scaling and the mask on the mixture). Batch
norms are folded into the dense layers (inference statistics). STFT, EM and ISTFT are not in
the file: ONNX has no complex type and no inverse STFT, so the host computes them.

Inputs:
    magnitude: float32 `(batch, frames, bins, channels)`, the mixture's STFT magnitude.
    lengths: int32 `(batch,)` valid frames of each zero-padded sequence.
    offsets: int64 `(batch,)` the first frame to output of each sequence.
    width: int64 scalar, frames to output (from `offsets[b]`; past the end, the last frame repeats).
Output:
    estimates: float32 `(batch, targets, width, bins, channels)`, each target's magnitude.

For a whole track in one sequence: `lengths = [frames]`, `offsets = [0]`, `width = frames`.
"""

import numpy as np

from umx_core.errors import UMXError

OPSET = 17
FORMS = ("bidirectional", "split", "unpadded")  # how the LSTMs are written (`_lstm`)
INPUTS = ("magnitude", "lengths", "offsets", "width")
TORCH_TO_ONNX_GATES = (0, 3, 1, 2)  # torch's (i, f, g, o) blocks in ONNX's order (i, o, f, c)


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise UMXError("ONNX export needs the onnx package: pip install 'umx-tf[onnx]'") from exc
    return onnx


class _Graph:
    """Nodes and constants under construction, each with a name unique in the graph."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.constants, self.count = onnx, [], [], 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, array, hint="c"):
        array = np.ascontiguousarray(array)
        name = self.name(hint)
        self.constants.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, kind, inputs, hint=None, outputs=1, **attributes):
        names = [self.name(hint or kind.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(kind, list(inputs), names, **attributes))
        return names[0] if outputs == 1 else names


def _batch_norm(bn):
    """`(scale, shift)` of a Keras BatchNormalization at inference."""
    gamma, beta, mean, variance = (np.asarray(w.numpy(), np.float64) for w in
                                   (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance))
    scale = gamma / np.sqrt(variance + bn.epsilon)
    return scale, beta - mean * scale


def _dense_bn(g, x, dense, bn, hint, before=None, after=None):
    """`bn(dense(x))` as one MatMul and Add: the norm folded into the kernel and bias, and with
    them an elementwise `(x + before[0]) * before[1]` on the input and `y * after[0] + after[1]`
    on the output (vectors over the input's and the output's features)."""
    scale, shift = _batch_norm(bn)
    kernel = np.asarray(dense.kernel.numpy(), np.float64) * scale[None, :]
    bias = shift
    if before is not None:  # W'(x + m) s = (diag(s) W')x + W'(m s)
        add, mul = (np.asarray(v, np.float64) for v in before)
        kernel = kernel * mul[:, None]
        bias = bias + (add * mul) @ (kernel / mul[:, None])
    if after is not None:
        mul, add = (np.asarray(v, np.float64) for v in after)
        kernel, bias = kernel * mul[None, :], bias * mul + add
    y = g.op("MatMul", [x, g.const(kernel.astype(np.float32), f"{hint}_kernel")], hint)
    return g.op("Add", [y, g.const(bias.astype(np.float32), f"{hint}_bias")], hint)


def _lstm(g, x, lstm, lengths, form):
    """The `LSTMStack` over `x` `(batch, frames, features)` as ONNX LSTM ops (time-major inside).

    `form` (see `FORMS`): "bidirectional", one LSTM op with `sequence_lens`; "split", each direction
    a forward LSTM without `sequence_lens`, the backward one between two `ReverseSequence`s (each
    sequence reversed within its length), as `LSTMStack` computes it (frames past a sequence's
    length hold whatever, never reaching its valid frames); "unpadded", one LSTM op without
    `sequence_lens`, for batches whose sequences all fill the frames."""
    split = form == "split"
    if form == "unpadded":
        lengths = None
    units, directions = lstm.units, lstm.directions
    x = g.op("Transpose", [x], "time_major", perm=[1, 0, 2])  # (frames, batch, features)
    lengths64 = g.op("Cast", [lengths], to=7) if split else None  # ReverseSequence takes int64
    for layer in range(lstm.nb_layers):
        kernel = np.asarray(lstm.kernels[layer].numpy())  # (in, directions * 4 units), torch gate order
        recurrent = np.asarray(lstm.recurrent_kernels[layer].numpy())  # (directions, units, 4 units)
        bias = np.asarray(lstm.biases[layer].numpy())  # (directions * 4 units)

        def gates(matrix):  # (..., 4 units) torch order -> ONNX order
            blocks = np.split(matrix, 4, axis=-1)
            return np.concatenate([blocks[k] for k in TORCH_TO_ONNX_GATES], axis=-1)

        w = np.stack([gates(kernel[:, d * 4 * units:(d + 1) * 4 * units]).T for d in range(directions)])
        r = np.stack([gates(recurrent[d]).T for d in range(directions)])
        b = np.stack([np.concatenate([gates(bias[d * 4 * units:(d + 1) * 4 * units]), np.zeros(4 * units)])
                      for d in range(directions)])
        if split:
            outputs = []
            for d in range(directions):
                inputs = x if d == 0 else g.op("ReverseSequence", [x, lengths64], batch_axis=1, time_axis=0)
                y = g.op("LSTM", [inputs, g.const(w[d:d + 1].astype(np.float32), "W"),
                                  g.const(r[d:d + 1].astype(np.float32), "R"), g.const(b[d:d + 1].astype(np.float32), "B")],
                         f"lstm{layer}_{d}", hidden_size=units)
                y = g.op("Squeeze", [y, g.const(np.array([1], np.int64))])  # (frames, batch, units)
                outputs.append(y if d == 0 else g.op("ReverseSequence", [y, lengths64], batch_axis=1, time_axis=0))
            x = g.op("Concat", outputs, axis=-1) if directions == 2 else outputs[0]
            continue
        y = g.op("LSTM", [x, g.const(w.astype(np.float32), "W"), g.const(r.astype(np.float32), "R"),
                          g.const(b.astype(np.float32), "B"), *([lengths] if lengths else [])], f"lstm{layer}",
                 hidden_size=units, direction="bidirectional" if directions == 2 else "forward")
        # Y: (frames, directions, batch, units) -> (frames, batch, directions * units), forward first
        y = g.op("Transpose", [y], perm=[0, 2, 1, 3])
        x = g.op("Reshape", [y, g.const(np.array([0, 0, directions * units], np.int64))])
    return g.op("Transpose", [x], "batch_major", perm=[1, 0, 2])


def _centre(g, x, offsets, width, frames, rank):
    """Frames `offsets[b] .. offsets[b] + width` of each sequence of `x` (`rank` dims, frames on axis 1),
    indices past the end repeating the last frame."""
    steps = g.op("Range", [g.const(np.array(0, np.int64)), width, g.const(np.array(1, np.int64))])
    index = g.op("Add", [g.op("Unsqueeze", [offsets, g.const(np.array([1], np.int64))]),
                         g.op("Unsqueeze", [steps, g.const(np.array([0], np.int64))])])
    last = g.op("Sub", [frames, g.const(np.array(1, np.int64))])
    index = g.op("Min", [index, last])  # (batch, width)
    index = g.op("Unsqueeze", [index, g.const(np.arange(2, rank, dtype=np.int64))])
    shape = g.op("Concat", [g.op("Shape", [index], end=2), g.op("Shape", [x], start=2)], axis=0)
    return g.op("GatherElements", [x, g.op("Expand", [index, shape])], axis=1)


def _per_feature(layer, weight):
    """A per-bin vector of `layer` repeated over its channels (bins and channels flattened bin-major)."""
    return np.repeat(np.asarray(weight.numpy(), np.float64), layer.nb_channels)


def _encode(g, layer, magnitude):
    """A `BLSTMSpectralFilterLayer`'s LSTM input `(batch, frames, hidden)`; its input scaling goes into fc1."""
    max_bin = layer.max_bin
    x = g.op("Slice", [magnitude, g.const(np.array([0], np.int64)), g.const(np.array([max_bin], np.int64)),
                       g.const(np.array([2], np.int64))])
    x = g.op("Reshape", [x, g.const(np.array([0, 0, max_bin * layer.nb_channels], np.int64))])
    scaling = (_per_feature(layer, layer.input_mean), _per_feature(layer, layer.input_scale))
    return g.op("Tanh", [_dense_bn(g, x, layer.fc1, layer.bn1, "fc1", before=scaling)])


def _decode(g, layer, features, mix):
    """The target's magnitude from `(batch, width, 2 hidden)` features and the mixture's frames;
    the output scaling goes into fc3."""
    x = g.op("Relu", [_dense_bn(g, features, layer.fc2, layer.bn2, "fc2")])
    x = _dense_bn(g, x, layer.fc3, layer.bn3, "fc3", after=(_per_feature(layer, layer.output_scale),
                                                          _per_feature(layer, layer.output_mean)))
    x = g.op("Reshape", [x, g.const(np.array([0, 0, layer.nb_bins, layer.nb_channels], np.int64))])
    return g.op("Mul", [g.op("Relu", [x]), mix])


def _mean(g, names):
    """The mean of equally shaped tensors."""
    total = g.op("Sum", names) if len(names) > 1 else names[0]
    return g.op("Mul", [total, g.const(np.array(1.0 / len(names), np.float32))])


def _filters(g, layers, magnitude, lengths, offsets, width, frames, form, bridge):
    """Every target's `(batch, width, bins, channels)` estimate, crossed as X-UMX does when `bridge`
    (`umx_core.nn.bridge.bridged_filters`)."""
    mix = _centre(g, magnitude, offsets, width, frames, 4)
    encoded = [_encode(g, layer, magnitude) for layer in layers]
    if bridge:
        shared = _mean(g, encoded)
        features = _mean(g, [g.op("Concat", [own, _lstm(g, shared, layer.lstm, lengths, form)], axis=-1)
                             for own, layer in zip(encoded, layers)])
        features = _centre(g, features, offsets, width, frames, 3)
        return [_decode(g, layer, features, mix) for layer in layers]
    return [_decode(g, layer, _centre(g, g.op("Concat", [x, _lstm(g, x, layer.lstm, lengths, form)], axis=-1),
                                      offsets, width, frames, 3), mix)
            for x, layer in zip(encoded, layers)]


def filters_to_onnx(layers, targets, nb_bins, nb_channels, form="bidirectional", bridge=False):
    """The ONNX model (`onnx.ModelProto`) of a joint filter's layers (see the module docstring).

    Args:
        layers: the targets' filter layers (built `BLSTMSpectralFilterLayer`s), in target order.
        targets: their names (recorded in the model's metadata).
        nb_bins, nb_channels: the magnitude's bins and channels.
        form: how the LSTMs are written (`FORMS`, `_lstm`): the same function each way.
            "bidirectional" (the default, ONNX's own op with `sequence_lens`) is the portable
            file; OpenVINO's CPU plugin fuses only LSTMs without `sequence_lens` (it runs the
            others as a generic loop), so it runs "split", or "unpadded" where no sequence is padded.
        bridge: the layers crossed as X-UMX does (a bridged joint filter's).
    Raises:
        UMXError for a filter that is not a `BLSTMSpectralFilterLayer` (a custom layer has no
        ONNX form here), or without the onnx package.
    """
    from umx_core.nn.spectral_filter import BLSTMSpectralFilterLayer

    onnx = _onnx()
    helper = onnx.helper
    for name, layer in zip(targets, layers):
        if not isinstance(layer, BLSTMSpectralFilterLayer):
            raise UMXError(f"target {name}: a {type(layer).__name__} has no ONNX form (only "
                           f"BLSTMSpectralFilterLayer filters are exported)")
    g = _Graph(onnx)
    lengths = "lengths"
    frames = g.op("Gather", [g.op("Shape", ["magnitude"]), g.const(np.array(1, np.int64))], "frames")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    outputs = _filters(g, layers, "magnitude", lengths, "offsets", "width", frames, form, bridge)
    outputs = [g.op("Unsqueeze", [o, g.const(np.array([1], np.int64))]) for o in outputs]
    stacked = g.op("Concat", outputs, axis=1) if len(outputs) > 1 else g.op("Identity", outputs)
    g.nodes.append(helper.make_node("Identity", [stacked], ["estimates"]))
    float32, int32, int64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT32, onnx.TensorProto.INT64
    graph = helper.make_graph(
        g.nodes, "umx_filters",
        [helper.make_tensor_value_info("magnitude", float32, ["batch", "frames", nb_bins, nb_channels]),
         helper.make_tensor_value_info("lengths", int32, ["batch"]),
         helper.make_tensor_value_info("offsets", int64, ["batch"]),
         helper.make_tensor_value_info("width", int64, [])],
        [helper.make_tensor_value_info("estimates", float32,
                                       ["batch", len(layers), "width", nb_bins, nb_channels])],
        initializer=g.constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="umx_core")
    helper.set_model_props(model, {"targets": ",".join(targets)})
    onnx.checker.check_model(model)
    return model


def export(separator, path, metadata=None):
    """Write a separator's filters as one ONNX file, local or gs://; returns `path`.

    The file's metadata carries what a caller needs for the STFT around it (`targets`,
    `sample_rate`, `n_fft`, `n_hop`, `nb_channels`, the separator's settings) and the code version.
    A bridged separator over some of its model's targets writes every target: each needs the others.
    """
    import json

    from umx_core import storage

    joint = separator.model.joint
    targets = list(joint.filters)
    model = filters_to_onnx(joint.filter_layers, targets, separator.n_fft // 2 + 1, separator.nb_channels,
                            bridge=joint.bridge)
    config = {**(metadata or {}), **separator.config()}
    props = {"targets": ",".join(targets), "sample_rate": str(separator.sample_rate),
             "n_fft": str(separator.n_fft), "n_hop": str(separator.n_hop), "nb_channels": str(separator.nb_channels),
             "separator": json.dumps(config)}
    _onnx().helper.set_model_props(model, props)
    storage.write_bytes(path, model.SerializeToString())
    return path
