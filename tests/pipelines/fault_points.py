"""Run a module with a stop at one named step of writing a track, without hooks in product code:
`UMX_FAULT_AT=place:2 UMX_FAULT_DO=kill python -m tests.pipelines.fault_points pipelines.separate_catalog ARGS`.

The steps (counted over the whole process, the N-th one stops):
    write   the N-th block written to a track's staged stems (after it: stems half-written)
    place   the N-th stem moved (local) or uploaded (gs://) into place (before it: between stems)
    upload  the N-th stem upload to gs://, halfway through sending its bytes (a request cut mid-body)
    record  the N-th completeness record (`separation.json`), before it is written (stems all placed)
    record-rename  the N-th local record written under its temporary name, before its rename

What happens there (`UMX_FAULT_DO`):
    kill        the process SIGKILLs itself (nothing is flushed, no handler runs)
    pause:DIR   it writes one line to the FIFO `DIR/arrived` (what the step was about to write, if
                known), then waits until a writer opens and closes the FIFO `DIR/go` (the test decides
                when it goes on; no polling on either side)
"""

import itertools
import os
import runpy
import signal
import socket
import sys

from umx_core import storage
from umx_core.audio import encode
from pipelines.records import RECORD_NAME

STEPS = ("write", "place", "upload", "record", "record-rename")


def act(action, about=""):
    """Do `action` here (see the module's docstring); `about`: what the step was about to write."""
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("pause:"):
        folder = action[len("pause:") :]
        with open(os.path.join(folder, "arrived"), "w") as fifo:
            fifo.write(f"{about}\n")
        with open(os.path.join(folder, "go")) as fifo:
            fifo.read()
    else:
        raise ValueError(f"UMX_FAULT_DO={action!r}: expected kill or pause:DIR")


def install(step, nth, action):
    """Patch the step's function so that its `nth` call does `action`."""
    if step not in STEPS:
        raise ValueError(f"UMX_FAULT_AT: the step must be one of {STEPS}, got {step!r}")
    calls = itertools.count(1)

    def reached():
        return next(calls) == nth

    if step == "write":
        write = encode.StemWriters.write

        def counted_write(self, stems):
            write(self, stems)
            if reached():
                act(action)

        encode.StemWriters.write = counted_write
    elif step == "record":
        write_bytes = storage.write_bytes

        def counted_write_bytes(path, data, **kwargs):
            if path.rstrip("/").rsplit("/", 1)[-1] == RECORD_NAME and reached():
                act(action, path)
            write_bytes(path, data, **kwargs)

        storage.write_bytes = counted_write_bytes
    elif step == "record-rename":
        replace = os.replace

        def counted_replace(src, dst, **kwargs):
            if os.path.basename(dst) == RECORD_NAME and reached():
                act(action, dst)
            return replace(src, dst, **kwargs)

        os.replace = counted_replace
    else:
        _patch_placing(step, reached, action)


def _patch_placing(step, reached, action):
    """`place` and `upload`: around `os.replace` of a `.part` file and `storage.upload_file`."""
    replace, upload_file, sendall = os.replace, storage.upload_file, socket.socket.sendall
    cutting = []  # set while the upload to cut is sending

    def counted_replace(src, dst, **kwargs):
        if str(src).endswith(encode.PART) and step == "place" and reached():
            act(action, dst)
        return replace(src, dst, **kwargs)

    def counted_upload(path, target):
        if step == "place" and reached():
            act(action, target)
        if step == "upload" and reached():
            cutting.append(target)
        return upload_file(path, target)

    def cut_sendall(sock, data, *args):
        if not cutting or len(data) <= 2048:  # not the request with the stem's bytes
            return sendall(sock, data, *args)
        cutting.clear()
        sendall(sock, data[: len(data) // 2], *args)
        act(action)
        return sendall(sock, data[len(data) // 2 :], *args)

    os.replace, storage.upload_file, socket.socket.sendall = counted_replace, counted_upload, cut_sendall


def main():
    target, args = sys.argv[1], sys.argv[2:]
    if os.environ.get("UMX_FAULT_AT"):
        step, _, nth = os.environ["UMX_FAULT_AT"].partition(":")
        install(step, int(nth or 1), os.environ.get("UMX_FAULT_DO", "kill"))
    sys.argv = [target, *args]
    runpy.run_module(target, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
