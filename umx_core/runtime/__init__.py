"""Where a family's network runs: one factory, `runner(network, runtime, ...)`.

- `xla`: TensorFlow, on the CPU or a GPU, compiled with XLA (`umx_core.runtime.xla`);
- `openvino`: the network's ONNX graph (`onnx_export`; its command is `umx_core.cli.export_onnx`)
  on OpenVINO's CPU runtime (`umx_core.runtime.openvino`, an optional extra).

A runner is called with the network's inputs and returns its outputs; `in_graph` says whether it
runs inside the family's traced TensorFlow program (XLA) or between two of them on numpy arrays
(OpenVINO), and `precision` what it computes in.
"""


def runner(network, runtime="xla", precision="float32", jit_compile=True):
    """The runner of a family's `network` on `runtime` ("xla" or "openvino") in `precision`."""
    if runtime == "openvino":
        from umx_core.runtime.openvino import OpenVINORunner

        return OpenVINORunner(network, precision)
    from umx_core.runtime.xla import XLARunner

    return XLARunner(network, precision, jit_compile)
