"""The catalog job's expansion and skip check at catalog scale, against a counting stand-in for GCS.

A nightly run of a catalog of N tracks lists the inputs (`Expand`) and then, for every track,
decides whether it is complete (`Plan`). This runs the job's own DoFns, in this process, on a
stand-in for the google-cloud-storage client that holds no data (every object is computed from its
name) and counts the requests GCS would have served: list pages of 1,000 objects, metadata GETs,
object reads (a whole object or one range). It reports requests per track, the peak memory of each
phase (the growth of this process's peak RSS, each phase in a fresh process), the wall time in
process, and the time those requests take at GCS's published initial rates (5,000 object reads
per second per bucket; https://cloud.google.com/storage/docs/request-rate).

The catalog: N inputs in one folder, of which `--new` (default 1%) have no record yet; the others
have a complete record for this model and these settings (the usual night: nothing or little new).

    .venv/bin/python bench/catalog_scale.py [--tracks 1000000] [--new 0.01]
"""

import argparse
import collections
import io
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BUCKET, PAGE = "catalog", 1000
STEMS = ("vocals", "drums", "bass", "other")
READS_PER_SECOND = 5000  # GCS's initial object read rate per bucket (request-rate guidelines)
FINGERPRINT = "0123456789abcdef"


class NotFound(Exception):
    """What the library raises for a missing object (`umx_core.storage.gcs_client.errors` knows it by name)."""


class Store:
    """The stand-in's objects, computed from their names, and the requests made of it."""

    def __init__(self, tracks, new_every):
        self.tracks, self.new_every = tracks, new_every
        self.requests = collections.Counter()
        self.wav = _tiny_wav()

    def input_name(self, n):
        return f"in/t{n:07d}.wav"

    def complete(self, n):
        return self.new_every == 0 or n % self.new_every != 0

    def meta(self, name):
        """`(generation, size)` of an object, or None."""
        kind, n = _parse(name)
        if kind is None or n >= self.tracks:
            return None
        if kind == "input":
            return 1_000_000 + n, len(self.wav)
        if kind == "record":
            return (2_000_000 + n, 700) if self.complete(n) else None
        return (3_000_000 + n, 40_000_000) if self.complete(n) else None

    def body(self, name):
        kind, n = _parse(name)
        if self.meta(name) is None:
            raise NotFound(name)
        if kind == "input":
            return self.wav
        if kind == "record":
            generation, size = self.meta(self.input_name(n))
            return json.dumps({"input": f"gs://{BUCKET}/{self.input_name(n)}", "fingerprint": FINGERPRINT,
                               "input_identity": {"generation": generation, "size": size},
                               "stems": {s: f"gs://{BUCKET}/out/t{n:07d}/{s}.flac" for s in STEMS}}).encode()
        raise NotFound(name)  # stems are never read here

    def names(self, prefix, match_glob=None):
        """Every object name under `prefix`, in order (inputs, or each output folder's objects; only
        the records when the listing asks for them by `match_glob`, as GCS answers it)."""
        records_only = bool(match_glob) and match_glob.endswith("/separation.json")
        for n in range(self.tracks):
            if prefix.startswith("in"):
                yield self.input_name(n)
            elif self.complete(n):
                stems = () if records_only else tuple(f"{x}.flac" for x in STEMS)
                yield from (f"out/t{n:07d}/{s}" for s in (*stems, "separation.json"))

    def metadata(self, name):
        """A record's custom metadata, as the handler stores it (the same facts as its body)."""
        from pipelines.records import record_metadata

        return record_metadata(json.loads(self.body(name))) if name.endswith("/separation.json") else {}


def _parse(name):
    """`(kind, track number)` of an object name: input, record or stem."""
    if name.startswith("in/t") and name.endswith(".wav"):
        return "input", int(name[4:11])
    if name.startswith("out/t"):
        return ("record" if name.endswith("/separation.json") else "stem"), int(name[5:12])
    return None, 0


def _tiny_wav():
    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((441, 2), np.float32), 44100, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


class Blob:
    def __init__(self, store, name, meta=None, listed=False):
        self.store, self.name = store, name
        if meta is not None:
            self.generation, self.size = meta
            self.md5_hash, self.crc32c = "AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAA=="
            self.metadata = store.metadata(name) if listed else None

    def download_as_bytes(self, start=None, end=None, **kwargs):
        self.store.requests["object reads"] += 1
        data = self.store.body(self.name)
        return data if start is None else data[start : end + 1]


class Bucket:
    def __init__(self, store):
        self.store = store

    def blob(self, name):
        return Blob(self.store, name)

    def get_blob(self, name, **kwargs):
        self.store.requests["metadata GETs"] += 1
        meta = self.store.meta(name)
        return None if meta is None else Blob(self.store, name, meta)


class Client:
    """The part of `google.cloud.storage.Client` the storage module calls."""

    def __init__(self, store):
        self.store = store

    def bucket(self, name):
        return Bucket(self.store)

    def list_blobs(self, bucket, prefix="", match_glob=None, **kwargs):
        self.store.requests["list pages"] += 1
        for count, name in enumerate(self.store.names(prefix, match_glob), 1):
            if count % PAGE == 0:
                self.store.requests["list pages"] += 1  # the next page
            yield Blob(self.store, name, self.store.meta(name), listed=True)


def _expand(store):
    from pipelines.stages import ExpandInputs

    found = 0
    for _ in ExpandInputs(f"gs://{BUCKET}/out").process(("glob", f"gs://{BUCKET}/in/*.wav")):
        found += 1
    return found


def _plan(store):
    from pipelines.stages import Plan

    plan, outcomes = Plan(FINGERPRINT, False), collections.Counter()
    for n in range(store.tracks):
        for out in plan.process((f"gs://{BUCKET}/{store.input_name(n)}", f"gs://{BUCKET}/out/t{n:07d}")):
            outcomes[getattr(out, "tag", "todo")] += 1
    return dict(outcomes)


def _plan_listing(store):
    """Plan from one listing of the output's records, joined to the inputs by folder (Beam joins
    them in `ByFolder`; here both come in track order). The inputs' identities are what the
    expansion's listing already gave (counted under "expand")."""
    from pipelines.records import ListRecords, identity_text
    from pipelines.stages import Plan

    plan, outcomes = Plan(FINGERPRINT, False), collections.Counter()
    listed = iter(ListRecords().process(f"gs://{BUCKET}/out"))
    entry = next(listed)
    for n in range(store.tracks):
        folder = f"gs://{BUCKET}/out/t{n:07d}"
        found = None
        if isinstance(entry, tuple) and entry[0] == folder:
            found, entry = entry[1], next(listed)
        generation, size = store.meta(store.input_name(n))
        item = (f"gs://{BUCKET}/{store.input_name(n)}", folder,
                identity_text({"generation": generation, "size": size}), found)
        for out in plan.process(item, listed=True):
            outcomes[getattr(out, "tag", "todo")] += 1
    assert getattr(entry, "value", None) is True, "the listing did not end whole"
    return dict(outcomes)


PHASES = {"expand": _expand, "plan": _plan, "plan-listing": _plan_listing}


def phase(name, tracks, new):
    """One phase in this process: `{requests, result, seconds, peak_mb}`."""
    from umx_core.storage import gcs_client

    store = Store(tracks, round(1 / new) if new else 0)
    gcs_client.client = lambda: Client(store)
    import pipelines.stages  # noqa: F401  (imports before the baseline)
    import umx_core.audio  # noqa: F401

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    result = PHASES[name](store)
    seconds = time.perf_counter() - began
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # ru_maxrss: KiB on Linux
    return {"requests": dict(store.requests), "result": result, "seconds": seconds, "peak_mb": peak}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--new", type=float, default=0.01, help="fraction of tracks without a record")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)  # one phase, as JSON
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.tracks, args.new)))
        return
    print(f"{args.tracks:,} tracks, {args.new:.1%} without a record; requests counted on a stand-in for GCS")
    print(f"{'phase':12} {'requests':>10} {'per track':>10}  {'by kind':58} {'wall s':>7} {'peak MB':>8} "
          f"{'at 5000 reads/s':>16}")
    for name in PHASES:
        run = subprocess.run([sys.executable, __file__, "--phase", name, "--tracks", str(args.tracks),
                              "--new", str(args.new)], capture_output=True, text=True, check=True)
        got = json.loads(run.stdout.strip().splitlines()[-1])
        total = sum(got["requests"].values())
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(got["requests"].items()))
        print(f"{name:12} {total:>10,} {total / args.tracks:>10.3f}  {kinds:58} {got['seconds']:>7.1f} "
              f"{got['peak_mb']:>8.0f} {total / READS_PER_SECOND:>14.0f} s   {got['result']}")


if __name__ == "__main__":
    main()
