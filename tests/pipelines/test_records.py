"""The skip check from one listing of the output (pipelines/records.py) against the record-by-record
check it replaces on gs:// (issue 15): the same decision for every kind of folder, and no request
of its own for a complete track."""

import io
import json
import os

import numpy as np
import soundfile as sf

from pipelines.records import ListRecords, identity_text, record_metadata
from pipelines.records import fingerprint
from pipelines.stages import Plan
from tests.faults import FaultProxy
from tests.pipelines.conftest import RATE, run_in_process
from umx_core import storage
from pipelines.records import RECORD_NAME


def _wav(seed):
    buffer = io.BytesIO()
    data = (np.random.default_rng(seed).standard_normal((int(0.6 * RATE), 2)) * 0.1).astype(np.float32)
    sf.write(buffer, data, RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def _rewrite(folder, change, metadata=True):
    """Rewrite a folder's record with `change` applied (and metadata that says the same, or none)."""
    path = storage.join(folder, RECORD_NAME)
    record = {**json.loads(storage.read_bytes(path)), **change}
    storage.write_bytes(path, json.dumps(record).encode(), metadata=record_metadata(record) if metadata else None)


def _decisions(plan, items, listed):
    """`{name: [(tag, output)]}` of Plan over `items`, and the requests each made (through a proxy)."""
    upstream, out, requests = os.environ["STORAGE_EMULATOR_HOST"], {}, {}
    with FaultProxy(upstream, {}, lifetime=120) as proxy:
        os.environ["STORAGE_EMULATOR_HOST"] = proxy.url
        try:
            for name, item in items.items():
                before = proxy.counts["requests"]
                out[name] = [(getattr(o, "tag", "todo"), getattr(o, "value", o))
                             for o in plan.process(item, listed=listed)]
                requests[name] = proxy.counts["requests"] - before
        finally:
            os.environ["STORAGE_EMULATOR_HOST"] = upstream
    return out, requests


def test_the_listing_decides_as_reading_each_record_does(gcs_emulator, tiny_model):
    root = f"gs://{gcs_emulator}/records"
    source, output = f"{root}/in", f"{root}/out"
    names = ("complete", "stale", "replaced", "copied", "taken", "missing", "old", "new")
    for seed, name in enumerate(names[:-1]):
        storage.write_bytes(f"{source}/{name}.wav", _wav(seed))
    summary = run_in_process(["--input", f"{source}/*.wav", "--output", output, "--model", tiny_model,
                              "--codec", "wav", "--run_id", "first"])
    assert summary["separated"] == len(names) - 1
    storage.write_bytes(f"{source}/new.wav", _wav(99))  # no record yet
    fp = json.loads(storage.read_bytes(f"{output}/complete/{RECORD_NAME}"))["fingerprint"]
    _rewrite(f"{output}/stale", {"fingerprint": fingerprint({"niter": 0}, "other weights")})
    storage.write_bytes(f"{source}/replaced.wav", _wav(100))  # other audio under the same name
    storage.write_bytes(f"{source}/copied.wav", storage.read_bytes(f"{source}/copied.wav"))  # same bytes, new object
    _rewrite(f"{output}/taken", {"input": f"{source}/elsewhere.wav"})  # another input's folder
    storage.delete(f"{output}/missing/{RECORD_NAME}")
    _rewrite(f"{output}/old", {}, metadata=False)  # a record from before records carried metadata

    listed = list(ListRecords().process(output))
    listing = dict(o for o in listed if not hasattr(o, "tag"))
    complete = [o.value for o in listed if hasattr(o, "tag")]
    assert complete == [True] and sorted(listing) == sorted(f"{output}/{n}" for n in names if n not in ("missing",
                                                                                                         "new"))
    identities = dict(storage.glob_identities(f"{source}/*.wav"))
    plan = Plan(fp, overwrite=False)
    by_reading, read_requests = _decisions(plan, {n: (f"{source}/{n}.wav", f"{output}/{n}") for n in names}, False)
    by_listing, listed_requests = _decisions(plan, {
        n: (f"{source}/{n}.wav", f"{output}/{n}", identity_text(identities[f"{source}/{n}.wav"]),
            listing.get(f"{output}/{n}")) for n in names}, True)
    assert by_listing == by_reading
    tags = {name: [tag for tag, _ in outputs] for name, outputs in by_reading.items()}
    assert tags == {"complete": ["skipped"], "stale": ["todo"], "replaced": ["todo"], "copied": ["skipped"],
                    "taken": ["failed"], "missing": ["todo"], "old": ["skipped"], "new": ["todo"]}
    print(f"\nrequests per folder, reading each record: {read_requests}\nfrom the listing: {listed_requests}")
    # reading: the record and the input's metadata (and the client's first look at the bucket)
    assert listed_requests["complete"] == 0 and read_requests["complete"] >= 2
    assert listed_requests["missing"] < read_requests["missing"]  # no read of a record the listing says is absent
    assert all(listed_requests[n] <= read_requests[n] for n in names)
