"""`python -m umx_core.cli.export_onnx MODEL OUT.onnx`: a model's spectral filters as one ONNX file."""

import argparse
import sys

from umx_core.errors import UMXError, printable


def main(argv=None):
    """Write the filters of MODEL (a name or path, as `umx --model`) to OUT.onnx; 2 on a bad input."""
    parser = argparse.ArgumentParser(prog="python -m umx_core.cli.export_onnx",
                                     description="Write a model's spectral filters as one ONNX file (STFT, EM "
                                                 "and ISTFT are not in it: docs/models.md, \"ONNX\").")
    parser.add_argument("model", help="model name or path, as umx --model")
    parser.add_argument("out", help="the .onnx file to write, local or gs://")
    args = parser.parse_args(argv)
    from umx_core.cli.console import quiet_tensorflow

    quiet_tensorflow()
    from umx_core.pretrained import load_separator
    from umx_core.runtime.onnx_export import export

    try:
        export(load_separator(args.model), args.out)
    except UMXError as exc:
        print(f"export_onnx: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    print(f"{args.out}: the filters of {args.model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
