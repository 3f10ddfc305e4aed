"""Model names: published open-unmix weights served from loopback, shipped models, every path kind."""

import hashlib
import http.server
import os
import threading

import numpy as np
import pytest
import torch

from tests.conftest import random_openunmix
from umx_core import registry
from umx_core.pretrained import separator_from_openunmix
from umx_core.errors import UMXError
from umx_core.pretrained import load_separator


class Server:
    """A static file server on loopback that counts the requests it answers."""

    def __init__(self, root):
        self.requests = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=root, **kwargs)

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def published(tmp_path, monkeypatch):
    """Two umxse-like open-unmix models (16 kHz mono, n_fft 1024) served as release files."""
    files = tmp_path / "served" / "records" / "42" / "files"
    files.mkdir(parents=True)
    digests = {}
    for i, target in enumerate(("speech", "noise")):
        model = random_openunmix(nb_channels=1, hidden_size=16, nb_bins=513, max_bin=513, seed=i)
        path = files / f"{target}.pth"
        torch.save(model.state_dict(), path)
        digests[target] = hashlib.sha256(path.read_bytes()).hexdigest()
    server = Server(str(tmp_path / "served"))
    monkeypatch.setenv("UMX_CACHE", str(tmp_path / "cache"))
    yield server, files, digests
    server.close()


def entry(urls, digests):
    return registry.PublishedModel("test speech model", "MIT", {t: (urls[t], digests[t]) for t in urls},
                                   sample_rate=16000.0, n_fft=1024, n_hop=512, nb_channels=1)


def test_download_convert_cache(published, monkeypatch):
    server, files, digests = published
    urls = {t: f"{server.url}records/42/files/{t}.pth" for t in digests}
    monkeypatch.setitem(registry.PUBLISHED, "testse", entry(urls, {t: d[:8] for t, d in digests.items()}))
    separator = load_separator("testse")
    assert sorted(server.requests) == ["/records/42/files/noise.pth", "/records/42/files/speech.pth"]
    assert separator.targets == ["speech", "noise"] and separator.sample_rate == 16000
    assert (separator.n_fft, separator.n_hop, separator.nb_channels, separator.niter) == (1024, 512, 1, 1)
    reference = separator_from_openunmix({t: str(files / f"{t}.pth") for t in digests}, niter=1,
                                         sample_rate=16000.0, n_fft=1024, n_hop=512)
    audio = np.random.default_rng(0).standard_normal((1, 1, 16000)).astype(np.float32) * 0.1
    np.testing.assert_allclose(separator(audio), reference(audio), atol=1e-6)
    # a second load is a cache hit: no request, same model
    again = load_separator("testse", targets=["speech"], niter=0)
    assert len(server.requests) == 2 and again.targets == ["speech"]
    np.testing.assert_allclose(again(audio)[:, 0], load_separator("testse", niter=0)(audio)[:, 0], atol=1e-6)


def test_checksum_mismatch_is_refused_and_nothing_is_kept(published, monkeypatch):
    server, _, digests = published
    urls = {t: f"{server.url}records/42/files/{t}.pth" for t in digests}
    bad = {**digests, "noise": "0123abcd"}
    monkeypatch.setitem(registry.PUBLISHED, "badse", entry(urls, bad))
    with pytest.raises(UMXError, match=r"badse/noise: .*noise.pth has sha256 [0-9a-f]{64}, expected 0123abcd.*refused"):
        load_separator("badse")
    downloads = os.path.join(registry.cache_dir(), "downloads", "badse")
    assert sorted(os.listdir(downloads)) == ["speech.pth"]  # the good file stays, nothing of the bad one
    assert not os.path.exists(os.path.join(registry.cache_dir(), "models"))


def test_mirror_and_unreachable_server(published, monkeypatch):
    server, _, digests = published
    zenodo = {t: f"https://zenodo.org/records/42/files/{t}.pth" for t in digests}
    monkeypatch.setitem(registry.PUBLISHED, "mirrored", entry(zenodo, digests))
    monkeypatch.setenv("UMX_MODEL_MIRROR", server.url)
    assert load_separator("mirrored").targets == ["speech", "noise"] and len(server.requests) == 2
    dead = {t: f"http://127.0.0.1:9/records/42/files/{t}.pth" for t in digests}
    monkeypatch.setitem(registry.PUBLISHED, "dead", entry(dead, digests))
    with pytest.raises(UMXError, match="dead/speech: cannot download http://127.0.0.1:9/.*UMX_MODEL_MIRROR"):
        load_separator("dead")


def test_published_entries_are_consistent():
    for name, model in registry.PUBLISHED.items():
        for target, (url, digest) in model.files.items():
            assert url.startswith(registry.ZENODO) and len(digest) == 8 and digest in url, (name, target)
    assert registry.PUBLISHED["umxl"].commercial_use is False and "NON-COMMERCIAL" in registry.PUBLISHED["umxl"].licence
    se = registry.PUBLISHED["umxse"]
    assert (se.sample_rate, se.n_fft, se.n_hop, se.nb_channels) == (16000.0, 1024, 512, 1)


@pytest.mark.parametrize("name", ["demo-5stems", "demo-2stems"])
def test_shipped_demo_models_load_offline(name, monkeypatch, tmp_path):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError(f"a shipped model opened a connection: {args}")

    monkeypatch.setenv("UMX_CACHE", str(tmp_path))
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    separator = load_separator(name)
    monkeypatch.undo()
    assert separator.sample_rate == 44100 and separator.niter == 1
    audio = np.random.default_rng(1).standard_normal((1, 2, 44100)).astype(np.float32) * 0.1
    stems = separator(audio)
    assert stems.shape == (1, len(separator.targets), 2, 44100) and np.isfinite(stems).all()
    assert not os.listdir(tmp_path)  # nothing downloaded or cached


def test_open_unmix_weight_folders_and_keras_files(tmp_path):
    folder = tmp_path / "umx-local"
    folder.mkdir()
    models = {t: random_openunmix(hidden_size=8, nb_bins=129, max_bin=100, seed=i) for i, t in enumerate(("a", "b"))}
    for target, model in models.items():
        torch.save(model.state_dict(), folder / f"{target}.pth")
    separator = load_separator(str(folder))
    assert separator.targets == ["a", "b"] and (separator.n_fft, separator.n_hop) == (256, 64)
    (folder / "separator.json").write_text('{"sample_rate": 8000, "nfft": 256, "nhop": 128, "nb_channels": 2}')
    assert (load_separator(str(folder)).n_hop, load_separator(str(folder)).sample_rate) == (128, 8000)
    separator.model.save(str(tmp_path / "umx.keras"))
    again = load_separator(str(tmp_path / "umx.keras"))
    audio = np.random.default_rng(2).standard_normal((1, 2, 20000)).astype(np.float32) * 0.1
    np.testing.assert_allclose(again(audio), separator(audio), atol=1e-6)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UMXError, match="empty: not a model"):
        load_separator(str(tmp_path / "empty"))
