"""umx_core.storage on a GCS that misbehaves: the emulator behind tests/faults.py's proxy (issue 15).

Every call ends with what the same call returns without faults, or a UMXError naming its path;
no read ever returns short data."""

import hashlib
import io
import os

import numpy as np
import pytest
import soundfile as sf

from tests.faults import FaultProxy
from umx_core import audio, storage
from umx_core.storage import gcs_client
from umx_core.errors import UMXError

ALL_FAULTS = {"429": 0.03, "500": 0.02, "503": 0.03, "reset_before": 0.02, "reset_after": 0.02, "truncate": 0.03,
              "delay": 0.02}  # 17% of requests


def _fast_retries(monkeypatch, deadline=20.0, timeout=3.0):
    from google.cloud.storage.retry import DEFAULT_RETRY

    # the production policy's predicate, faster backoff so a test takes seconds
    monkeypatch.setattr(gcs_client, "RETRY", DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.2).with_timeout(deadline))
    monkeypatch.setattr(gcs_client, "TIMEOUT", (timeout, timeout))


@pytest.fixture
def faulty(gcs_emulator, monkeypatch):
    """`start(rates, seed)` -> a started proxy the storage module now talks to."""
    upstream, proxies = os.environ["STORAGE_EMULATOR_HOST"], []
    monkeypatch.setattr(storage.gcs, "READ_CHUNK", 1 << 14)  # many range requests per file
    _fast_retries(monkeypatch)

    def start(rates, seed=0, **kwargs):
        proxy = FaultProxy(upstream, rates, seed=seed, delay=0.05, lifetime=120, **kwargs).start()
        proxies.append(proxy)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


def _objects(bucket, prefix, rng, count=6):
    """Reference objects written without faults: `{path: bytes}` of several sizes."""
    out = {}
    for k in range(count):
        data = rng.integers(0, 256, int(rng.integers(1, 90_000)), dtype=np.uint8).tobytes()
        path = f"gs://{bucket}/{prefix}/d{k % 2}/o{k}.bin"
        storage.write_bytes(path, data)
        out[path] = data
    return out


def _ranged(path, reference, rng):
    """Random seeks and reads through `open_read`, each compared with the reference bytes."""
    with storage.open_read(path) as f:
        for _ in range(4):
            at, size = int(rng.integers(0, len(reference))), int(rng.integers(1, 40_000))
            f.seek(at)
            assert f.read(size) == reference[at : at + size]
        f.seek(-10, io.SEEK_END)
        assert f.read() == reference[-10:]


def test_every_call_ends_right_or_names_its_path(faulty, gcs_emulator, tmp_path):
    rng = np.random.default_rng(15)
    objects = _objects(gcs_emulator, "calls", rng)
    prefix = f"gs://{gcs_emulator}/calls"
    # the expected values from hashlib and the client library, against the emulator without faults
    from google.cloud import storage as google_storage

    client = google_storage.Client.create_anonymous_client()
    blobs = {f"gs://{gcs_emulator}/{b.name}": b for b in client.list_blobs(gcs_emulator, prefix="calls/")}
    reference = {"files": sorted(blobs), "dirs": sorted({p[len(prefix) + 1:].split("/")[0] for p in blobs
                                                         if "/" in p[len(prefix) + 1:]}),
                 "checksums": {p: "md5:" + hashlib.md5(data).hexdigest() for p, data in objects.items()},
                 "identities": {p: {"generation": int(blobs[p].generation), "size": len(data)}
                                for p, data in objects.items()}}
    proxy = faulty(ALL_FAULTS, seed=15)
    done, named = 0, []

    def call(path, action, *args):
        nonlocal done
        try:
            result = action(*args)
        except UMXError as exc:  # allowed only when it names the path; anything else fails the test
            assert path in str(exc), exc
            named.append(str(exc))
            return None
        done += 1
        return result

    local = tmp_path / "local.bin"
    for round_ in range(3):
        for path, data in objects.items():
            assert call(path, storage.read_bytes, path) in (data, None)
            call(path, _ranged, path, data, rng)
            assert call(path, storage.exists, path) in (True, None)
            assert call(path, storage.checksum, path) in (reference["checksums"][path], None)
            assert call(path, storage.identity, path) in (reference["identities"][path], None)
        assert call(prefix, storage.list_files, prefix) in (reference["files"], None)
        assert call(prefix, storage.list_dirs, prefix) in (reference["dirs"], None)
        new, data = f"gs://{gcs_emulator}/written/{round_}.bin", rng.bytes(50_000 + round_)
        call(new, storage.write_bytes, new, data)
        local.write_bytes(data[::-1])
        call(new + ".up", storage.upload_file, str(local), new + ".up")
        proxy.enabled = False  # the check itself without faults
        assert storage.read_bytes(new) == data and storage.read_bytes(new + ".up") == data[::-1]
        proxy.enabled = True
        call(new, storage.delete, new)
        assert call(new, storage.exists, new) in (False, None)
        call(prefix, _check_local_dir, prefix, objects)
    injected = proxy.injected()
    print(f"\n{done} calls right, {len(named)} failed naming their path; injected {injected} "
          f"in {proxy.counts['requests']} requests")
    assert set(injected) == set(ALL_FAULTS)  # every kind happened
    assert sum(injected.values()) >= 0.1 * proxy.counts["requests"]
    assert done >= 0.9 * (done + len(named))  # retried, not given up on
    writes = [p for m, p, _ in proxy.seen if m == "POST" and "/upload/" in p]
    assert writes and all("ifGenerationMatch=" in p for p in writes)  # every upload under a precondition


def _check_local_dir(prefix, objects):
    base = prefix.rstrip("/") + "/"
    with storage.local_dir(prefix) as folder:
        for path, data in objects.items():
            with open(os.path.join(folder, path[len(base) :]), "rb") as f:
                assert f.read() == data


def test_bodies_cut_short_are_retried_or_fail_naming_the_path(faulty, gcs_emulator, monkeypatch):
    rng = np.random.default_rng(3)
    path = f"gs://{gcs_emulator}/short/x.bin"
    data = rng.bytes(70_000)
    storage.write_bytes(path, data)
    proxy = faulty({"truncate": 0.5}, seed=3)
    for _ in range(5):
        assert storage.read_bytes(path) == data
        _ranged(path, data, rng)
    assert proxy.injected()["truncate"] >= 5
    # every body cut short and a short deadline: a clear error, never short data
    _fast_retries(monkeypatch, deadline=0.5)
    faulty({"truncate": 1.0})
    for read in (storage.read_bytes, lambda p: storage.open_read(p).read()):
        with pytest.raises(UMXError, match=f"{path}: GCS (metadata )?read failed"):
            read(path)
    # half the body under a Content-Length that says so: the checksum (whole reads) or the length a
    # range read expected catches it
    faulty({}, always={"alt=media": "short"})
    with pytest.raises(UMXError, match=f"{path}: GCS read failed .*DataCorruption"):
        storage.read_bytes(path)
    with pytest.raises(UMXError, match=f"{path}: GCS range read failed .*ShortRead"):
        storage.open_read(path).read(100)


# soundfile reads through a C callback, which reports the storage error as "ignored" (the Reader re-raises it)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_audio_read_through_faults_equals_the_file_or_names_the_storage_error(faulty, gcs_emulator, monkeypatch):
    rate, rng = 16000, np.random.default_rng(4)
    samples = (rng.standard_normal((3 * rate, 2)) * 0.1).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    path = f"gs://{gcs_emulator}/audio/a.wav"
    storage.write_bytes(path, buffer.getvalue())
    proxy = faulty(ALL_FAULTS, seed=4)
    for _ in range(3):
        np.testing.assert_array_equal(audio.read(path), samples.T)
        np.testing.assert_array_equal(audio.read(path, start=rate, samples=rate), samples[rate : 2 * rate].T)
    assert sum(proxy.injected().values()) >= 3
    # a storage failure inside the decoder is named as one, not as a truncated or unreadable file
    _fast_retries(monkeypatch, deadline=0.3)
    proxy.rates, proxy.always = {}, {"alt=media": "503"}  # the metadata answers, every range read fails
    with pytest.raises(UMXError, match=f"{path}: GCS range read failed") as caught:
        audio.read(path)
    assert "ServiceUnavailable" in str(caught.value) and "truncated" not in str(caught.value)


def test_a_retried_upload_never_overwrites_another_writers_bytes(gcs_emulator, monkeypatch):
    """The emulator ignores preconditions, so the 412 GCS answers is played by a stand-in upload:
    the first try lands (its own bytes, or another writer's), then the precondition fails."""
    from google.api_core.exceptions import PreconditionFailed
    from google.cloud.storage import Blob

    real = Blob.upload_from_string
    path = f"gs://{gcs_emulator}/race/record.json"

    def landed_then_412(other):
        def upload(self, data, if_generation_match=None, **kwargs):
            assert if_generation_match is not None
            real(self, other if other is not None else data, **kwargs)
            raise PreconditionFailed("412 the generation changed")

        return upload

    monkeypatch.setattr(Blob, "upload_from_string", landed_then_412(None))
    storage.write_bytes(path, b"mine")  # our own first try had landed: success
    monkeypatch.setattr(Blob, "upload_from_string", real)
    assert storage.read_bytes(path) == b"mine"
    monkeypatch.setattr(Blob, "upload_from_string", landed_then_412(b"theirs"))
    with pytest.raises(UMXError, match=f"{path}: another writer replaced it"):
        storage.write_bytes(path, b"mine again")
    monkeypatch.setattr(Blob, "upload_from_string", real)
    assert storage.read_bytes(path) == b"theirs"
