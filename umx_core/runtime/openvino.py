"""A family's network on OpenVINO's CPU runtime, from its ONNX graph (UMX: `onnx_export`'s).

OpenVINO fuses each LSTM cell and, where the CPU has bfloat16 dot products (AVX512-BF16 or AMX),
runs the network in bfloat16 on request (its inference precision hint); elsewhere it runs float32
and says so. What the network's family computes around it (UMX: STFT, EM and ISTFT) stays in TensorFlow.

The graph is compiled once per input shape (the chunk engine's batches take a few): compiled with
dynamic shapes, OpenVINO's LSTM does not keep to `sequence_lens` (a zero-padded sequence's last
valid frames come out wrong), while each static shape is exact.
"""

import logging

import numpy as np

from umx_core.errors import UMXError

EXTRA = "pip install 'umx-tf[openvino]'"
SHAPES = 16  # compiled input shapes kept (a separator meets a few: its batches' rows and widths)


def _openvino():
    try:
        import openvino
    except ImportError as exc:
        raise UMXError(f"runtime openvino needs the openvino package: {EXTRA}") from exc
    return openvino


def has_bfloat16(core=None):
    """Whether OpenVINO's CPU plugin computes in bfloat16 on this machine (AVX512-BF16 or AMX)."""
    core = core or _openvino().Core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVINORunner:
    """A family's network compiled by OpenVINO for the CPU, from its ONNX graphs: numpy
    `(magnitude, lengths, offsets, width)` in (`onnx_export`'s inputs), every output out.

    Args:
        network: the family's network: `onnx(form)` (its ONNX graph with the LSTMs written as
            `form`, `onnx_export.FORMS`), `padded_form` (the form that keeps to `lengths`) and
            `outputs` (how many it stacks on axis 1).
        precision: "float32", or "bfloat16" (OpenVINO's bf16 inference hint, where the CPU has it).
    """

    in_graph = False
    runtime = "openvino"

    def __init__(self, network, precision="float32"):
        ov = _openvino()
        core = ov.Core()
        self.precision = precision
        if precision == "bfloat16" and not has_bfloat16(core):
            logging.getLogger(__name__).warning(
                "precision bfloat16: this CPU has no bfloat16 dot products (AVX512-BF16 or AMX); OpenVINO runs float32")
            self.precision = "float32"
        self.core = core
        # sequences that fill the frames (all but a track's last chunk) run the unpadded form, padded
        # ones the form the network says keeps to their lengths
        self.padded = network.padded_form
        self.models = {form: core.read_model(network.onnx(form).SerializeToString())
                       for form in (self.padded, "unpadded")}
        self.outputs = network.outputs
        self.config = {"INFERENCE_PRECISION_HINT": {"bfloat16": "bf16", "float32": "f32"}[self.precision]}
        self.requests = {}  # (form, batch, frames) -> an infer request of that form compiled for that shape

    def _request(self, form, batch, frames):
        key = (form, batch, frames)
        if key not in self.requests:
            if len(self.requests) >= SHAPES:
                self.requests.pop(next(iter(self.requests)))  # the oldest shape
            model = self.models[form].clone()
            bins, channels = (d.get_length() for d in model.input("magnitude").get_partial_shape()[2:])
            names = {name for port in model.inputs for name in port.get_names()}
            shapes = {"magnitude": [batch, frames, bins, channels], "lengths": [batch], "offsets": [batch]}
            model.reshape({name: shape for name, shape in shapes.items() if name in names})
            compiled = self.core.compile_model(model, "CPU", self.config)
            self.requests[key] = (compiled.create_infer_request(), names)
        return self.requests[key]

    def _run(self, form, magnitude, lengths, offsets, width):
        request, names = self._request(form, *magnitude.shape[:2])
        inputs = {"magnitude": np.ascontiguousarray(magnitude, np.float32), "lengths": lengths.astype(np.int32),
                  "offsets": offsets.astype(np.int64), "width": np.asarray(width, np.int64)}
        try:
            return request.infer({name: value for name, value in inputs.items() if name in names})[0].copy()
        except RuntimeError as exc:
            raise UMXError(f"OpenVINO could not run the filters ({exc})") from exc

    def __call__(self, magnitude, lengths, offsets, width):
        """float32 `(batch, targets, width, bins, channels)` estimates (see `onnx_export`)."""
        lengths, offsets = np.asarray(lengths), np.asarray(offsets)
        full = lengths == magnitude.shape[1]
        if full.all() or not full.any():
            return self._run("unpadded" if full.all() else self.padded, magnitude, lengths, offsets, width)
        out = np.empty((len(lengths), self.outputs, int(width)) + magnitude.shape[2:], np.float32)
        for form, rows in (("unpadded", full), (self.padded, ~full)):
            out[rows] = self._run(form, magnitude[rows], lengths[rows], offsets[rows], width)
        return out
