"""The network outside TensorFlow: its filters as an ONNX graph (`onnx_export`; its command is
`umx_core.cli.export_onnx`) and OpenVINO as the CPU runtime that runs that graph (`openvino`). Both are optional extras."""
