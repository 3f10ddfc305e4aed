"""The network outside TensorFlow: its filters as an ONNX graph (`onnx_export`, also a command) and
OpenVINO as the CPU runtime that runs that graph (`openvino`). Both are optional extras."""
