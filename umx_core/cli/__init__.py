"""The `umx` command (`main`), the ONNX export command (`export_onnx`), and what every command of the
project shares: quiet TensorFlow start-up (`console`) and the persistent XLA cache (`xla_cache`)."""

from umx_core.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
