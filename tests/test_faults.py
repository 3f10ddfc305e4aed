"""The fault-injecting proxy itself (tests/faults.py): it forwards faithfully, injects each kind of
fault it says it does, follows its seed, and stops by itself."""

import http.client
import os
import time
import urllib.parse

import pytest

from tests.faults import FaultProxy


def _get(url, path):
    """`(status, body)` of one GET, or the exception that ended it."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        return exc
    finally:
        connection.close()


def _status(result):
    return result[0] if isinstance(result, tuple) else type(result).__name__


LIST = "/storage/v1/b/test-bucket/o"


def test_forwards_and_injects_each_kind(gcs_emulator):
    from umx_core import storage

    storage.write_bytes(f"gs://{gcs_emulator}/proxy/x.bin", b"x" * 5000)
    upstream = os.environ["STORAGE_EMULATOR_HOST"]
    reference = _get(upstream, LIST + "?prefix=proxy/")
    assert reference[0] == 200 and b"x.bin" in reference[1]
    with FaultProxy(upstream, {}) as proxy:
        # the same answer, with the emulator's own address (in mediaLink) pointing at the proxy
        assert upstream.encode() in reference[1]
        assert _get(proxy.url, LIST + "?prefix=proxy/") == (200, reference[1].replace(upstream.encode(),
                                                                                      proxy.url.encode()))
    media = "/download/storage/v1/b/test-bucket/o/proxy%2Fx.bin?alt=media"
    for kind, check in [("429", lambda r: r[0] == 429), ("503", lambda r: r[0] == 503),
                        ("reset_before", lambda r: isinstance(r, (ConnectionError, http.client.RemoteDisconnected))),
                        ("reset_after", lambda r: isinstance(r, (ConnectionError, http.client.RemoteDisconnected))),
                        ("truncate", lambda r: isinstance(r, http.client.IncompleteRead) and len(r.partial) == 2500),
                        ("delay", lambda r: r == (200, b"x" * 5000))]:
        with FaultProxy(upstream, {kind: 1.0}, delay=0.2) as proxy:
            began = time.monotonic()
            result = _get(proxy.url, media)
            assert check(result), (kind, result)
            assert proxy.injected() == {kind: 1}
            if kind == "delay":
                assert time.monotonic() - began >= 0.2


def _refused_within(url, seconds):
    """Whether connections to `url` are refused within `seconds` (polled: no fixed sleep)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if isinstance(_get(url, LIST), OSError):
            return True
        time.sleep(0.02)
    return False


def test_the_schedule_follows_the_seed_and_the_proxy_stops_by_itself(gcs_emulator):
    upstream = os.environ["STORAGE_EMULATOR_HOST"]
    rates = {"429": 0.2, "500": 0.1, "reset_before": 0.1}
    schedules = []
    for seed in (3, 3, 4):
        with FaultProxy(upstream, rates, seed=seed) as proxy:
            schedules.append([_status(_get(proxy.url, LIST)) for _ in range(40)])
            assert sum(proxy.injected().values()) == sum(s != 200 for s in schedules[-1])
    assert schedules[0] == schedules[1] != schedules[2]
    assert 4 <= sum(s != 200 for s in schedules[0]) <= 30
    proxy = FaultProxy(upstream, {}, lifetime=0.5).start()
    assert _get(proxy.url, LIST)[0] == 200
    assert _refused_within(proxy.url, 10.0)  # stopped by itself after its lifetime: connections refused
    with FaultProxy(upstream, {}, max_requests=3) as proxy:
        assert [_get(proxy.url, LIST)[0] for _ in range(2)] == [200, 200]
        _get(proxy.url, LIST)
        assert _refused_within(proxy.url, 10.0)
    with pytest.raises(ValueError):
        FaultProxy(upstream, {"teapot": 0.5})
