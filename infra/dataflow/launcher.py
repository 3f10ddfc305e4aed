"""Flex-template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE): runs the catalog job with the
parameters Dataflow passes as `--name=value` flags.

The workers run the image this launcher runs in: its name is baked in at build time
(`UMX_WORKER_IMAGE`, set by build.sh) and passed as `--sdk_container_image` unless the launch
gives one, so a launch needs no image parameter."""

import os
import sys

IMAGE_FLAGS = ("--sdk_container_image", "--worker_harness_container_image")


def with_worker_image(argv, environ=os.environ):
    """`argv` plus `--sdk_container_image=$UMX_WORKER_IMAGE` when no worker image is given."""
    image = environ.get("UMX_WORKER_IMAGE")
    if not image or any(arg.split("=", 1)[0] in IMAGE_FLAGS for arg in argv):
        return list(argv)
    return [*argv, f"--sdk_container_image={image}"]


if __name__ == "__main__":
    from pipelines.catalog import main

    # return once the job is submitted: a flex-template launcher that waits for the job keeps it
    # from starting (Dataflow's flex-template documentation)
    sys.exit(main(with_worker_image(sys.argv[1:]), wait=False))
