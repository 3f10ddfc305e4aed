"""Encoding stems: one writer per stem, written under a name unique to this attempt, renamed
into place only when every stem of the track is complete (and then uploaded for gs://).

Two attempts at the same track (a retried bundle, two overlapping runs) never touch each
other's temporary files, and a stem name that exists is always a whole stem. What a killed
attempt left behind (`.part` files untouched since this attempt began, of a process no longer
running) is removed when the next attempt commits.
"""

import glob
import os
import time
import uuid

import numpy as np
import soundfile as sf

from umx_core import settings, storage
from umx_core.errors import UMXError
from umx_core.settings import CODECS

PART = ".part"  # the suffix of a stem being written (after a token unique to the attempt)


class StemWriters:
    """Writers of a track's stems `{folder}/{name}.{codec}`, streamed block by block.

    Args:
        folder: the track's output folder, local or gs:// (gs:// stems are written to `staging`
            first and uploaded by `commit`).
        names: stem names.
        codec: a key of `umx_core.settings.CODECS`.
        rate, channels: of every stem.
        staging: a local folder for gs:// outputs (required then).
        on_place: optional `on_place(local_file, target)`, called for each stem just before
            `commit` puts it in place at `target`.
    """

    def __init__(self, folder, names, codec, rate, channels, staging=None, on_place=None):
        codec = settings.check("codec", codec)
        self.folder, self.codec, self.on_place = folder, codec, on_place
        self.local = staging if storage.is_gcs(folder) else folder
        if self.local is None:
            raise UMXError(f"{folder}: a gs:// output needs a local staging folder")
        fmt, self.subtype = CODECS[codec]
        token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"  # the writing process, then unique to the attempt
        self.names, self.started = list(names), time.time()
        os.makedirs(self.local, exist_ok=True)
        self.parts = {name: os.path.join(self.local, f"{name}.{codec}.{token}{PART}") for name in names}
        self._writers = {}
        for name, part in self.parts.items():
            self._writers[name] = sf.SoundFile(part, "w", samplerate=int(rate), channels=int(channels), format=fmt,
                                               subtype=self.subtype)

    def write(self, stems):
        """Append `{name: (channels, samples)}` to every stem (clipped to [-1, 1] unless float WAV)."""
        for name, writer in self._writers.items():
            data = np.asarray(stems[name]).T
            writer.write(np.clip(data, -1.0, 1.0) if self.subtype != "FLOAT" else data)

    def commit(self):
        """Close the stems, rename them into place and upload them for gs://; returns `{name: path}`.

        Raises:
            UMXError naming the stem that could not be stored (its track fails, nothing else).
        """
        self._close_writers()
        stems = {}
        for name, part in self.parts.items():
            final_name = f"{name}.{self.codec}"
            target = storage.join(self.folder, final_name)
            try:
                if self.on_place is not None:
                    self.on_place(part, target)
                if storage.is_gcs(self.folder):
                    storage.upload_file(part, target)
                    os.remove(part)
                else:
                    os.replace(part, target)
            except Exception as exc:  # any storage error fails this track only
                raise UMXError(f"{target}: cannot write the stem ({type(exc).__name__}: {exc})") from exc
            stems[name] = target
        self._sweep()
        return stems

    def abort(self):
        """Close and remove every unfinished stem (even when closing fails: a full disk)."""
        for name, part in self.parts.items():
            try:
                self._writers[name].close()
            except (OSError, RuntimeError):  # its last bytes could not be flushed: removed anyway
                pass
            if os.path.exists(part):
                os.remove(part)

    def _sweep(self):
        """Remove the `.part` files of attempts that died: not written to since this one began, by a
        process no longer running here (a live attempt may wait long between two writes)."""
        for name in self.names:
            prefix = os.path.join(self.local, f"{name}.{self.codec}.")
            for part in glob.glob(glob.escape(prefix) + f"*{PART}"):
                try:
                    pid = part[len(prefix) :].split("-", 1)[0]  # the token names the writing process
                    if os.path.getmtime(part) < self.started and not storage.process_running(pid):
                        os.remove(part)
                except OSError:  # gone meanwhile (its own attempt finished or swept it)
                    pass

    def _close_writers(self):
        for writer in self._writers.values():
            writer.close()
