"""Model names: the shipped demo models and the published open-unmix and demucs weights.

`resolve(name)` gives a local directory a `Separator` loads from: a shipped model inside the
package, or a published model downloaded once from its official release files, checked
against the digest pinned below, converted to a `Separator` directory and cached under
`UMX_CACHE` (default `$XDG_CACHE_HOME/umx-tf`, else `~/.cache/umx-tf`).

The published files are the open-unmix releases on Zenodo and demucs's Hybrid Transformer
checkpoints on dl.fbaipublicfiles.com (research-only weights). Their names carry the first eight
hex digits of each file's sha256 (torch.hub's convention, which open-unmix's and demucs's own
loaders check); those prefixes are what is pinned here. `UMX_MODEL_MIRROR` replaces
`https://zenodo.org/` and `https://dl.fbaipublicfiles.com/` in every URL, for workers without
internet access or a private copy.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request

from umx_core.errors import UMXError
from umx_core.saved import CONFIG_NAME
from umx_core.settings import N_FFT, N_HOP

ZENODO = "https://zenodo.org/"
MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
DEMO_LICENCE = "MIT (this project; trained on synthetic data only)"


@dataclasses.dataclass(frozen=True)
class PublishedModel:
    """Open-unmix weights published as one `.pth` file per target."""

    description: str
    licence: str
    files: dict  # {target: (url, sha256 or its leading hex digits)}
    sample_rate: float = 44100.0
    n_fft: int = N_FFT
    n_hop: int = N_HOP
    nb_channels: int = 2
    commercial_use: bool = True

    @property
    def targets(self):
        return list(self.files)


def _zenodo(record, names):
    return {target: (f"{ZENODO}records/{record}/files/{name}", name.rsplit(".", 1)[0][-8:])
            for target, name in names.items()}


NON_COMMERCIAL = "CC BY-NC-SA 4.0: NON-COMMERCIAL use only"
PUBLISHED = {
    "umxhq": PublishedModel(
        "open-unmix UMX-HQ: 4 stems, trained on MUSDB18-HQ (open-unmix's default before 1.2)",
        "MIT",
        _zenodo(3370489, {"vocals": "vocals-b62c91ce.pth", "drums": "drums-9619578f.pth",
                          "bass": "bass-8d85a5bd.pth", "other": "other-b52fbbf7.pth"})),
    "umx": PublishedModel(
        "open-unmix UMX: 4 stems, trained on MUSDB18 (compressed, 16 kHz bandwidth)",
        "MIT",
        _zenodo(3370486, {"vocals": "vocals-c8df74a5.pth", "drums": "drums-5a48008b.pth",
                          "bass": "bass-646024d3.pth", "other": "other-f8e132cc.pth"})),
    "umxl": PublishedModel(
        "open-unmix UMX-L: 4 stems, hidden size 1024, trained on extra data (open-unmix's default)",
        NON_COMMERCIAL,
        _zenodo(5069601, {"vocals": "vocals-bccbd9aa.pth", "drums": "drums-69e0ebd4.pth",
                          "bass": "bass-2ca1ce51.pth", "other": "other-c8c5b3e6.pth"}),
        commercial_use=False),
    "umxse": PublishedModel(
        "open-unmix UMX-SE: speech enhancement (speech, noise), 16 kHz mono, trained on Voicebank+DEMAND",
        "MIT",
        _zenodo(3786908, {"speech": "speech_f5e0d9f9.pth", "noise": "noise_04a6fc2d.pth"}),
        sample_rate=16000.0, n_fft=1024, n_hop=512, nb_channels=1),
}


@dataclasses.dataclass(frozen=True)
class PublishedDemucs:
    """A demucs model published as `.th` checkpoints (a bag of them: each stem the weighted mean of
    the models' estimates of it), converted into one `HTDemucs` or `ModelBag`."""

    description: str
    licence: str
    targets: list
    files: list  # [(url, sha256 or its leading hex digits)], one per model of the bag
    weights: list = None  # (models, targets): each model's weight per target (None: all 1)
    sample_rate: float = 44100.0
    commercial_use: bool = False


def _demucs(names):
    return [(f"{DEMUCS}{name}", name.rsplit(".", 1)[0][-8:]) for name in names]


DEMUCS_HOST = "https://dl.fbaipublicfiles.com/"
DEMUCS = f"{DEMUCS_HOST}demucs/hybrid_transformer/"
DEMUCS_SOURCES = ["drums", "bass", "other", "vocals"]
RESEARCH_ONLY = ("research only: demucs's author provides these weights 'only for scientific purposes', outside "
                 "its code's MIT licence (facebookresearch/demucs#327)")
PUBLISHED_DEMUCS = {
    "htdemucs": PublishedDemucs(
        "Hybrid Transformer Demucs (demucs 4): 4 stems, MUSDB18-HQ and 800 extra songs, 9.0 dB SDR published",
        RESEARCH_ONLY, DEMUCS_SOURCES, _demucs(["955717e8-8726e21a.th"])),
    "htdemucs_ft": PublishedDemucs(
        "htdemucs fine-tuned per stem: a bag of 4 models (4x the time), each weighted on its own stem",
        RESEARCH_ONLY, DEMUCS_SOURCES,
        _demucs(["f7e0c4bc-ba3fe64a.th", "d12395a8-e57c48e6.th", "92cfc3b6-ef3bcb9c.th", "04573f0d-f3cf25b2.th"]),
        weights=[[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]),
    "htdemucs_6s": PublishedDemucs(
        "htdemucs with guitar and piano: 6 stems (piano bleeds, its author says)",
        RESEARCH_ONLY, DEMUCS_SOURCES + ["guitar", "piano"], _demucs(["5c90dfd2-34c22ccb.th"])),
}


def shipped():
    """`{name: directory}` of the models shipped inside the package."""
    if not os.path.isdir(MODELS_DIR):
        return {}
    return {name: os.path.join(MODELS_DIR, name) for name in sorted(os.listdir(MODELS_DIR))
            if os.path.exists(os.path.join(MODELS_DIR, name, CONFIG_NAME))}


def cache_dir():
    """Where downloads and converted models live (`UMX_CACHE` overrides)."""
    if os.environ.get("UMX_CACHE"):
        return os.environ["UMX_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "umx-tf")


def names():
    """Every model name `resolve` knows."""
    return list(shipped()) + list(PUBLISHED) + list(PUBLISHED_DEMUCS)


def published(name):
    """The `PublishedModel` or `PublishedDemucs` called `name`, or None."""
    return PUBLISHED.get(name) or PUBLISHED_DEMUCS.get(name)


def describe():
    """Rows for `umx --list-models`: name, targets, sample rate, licence, description."""
    rows = []
    for name, folder in shipped().items():
        with open(os.path.join(folder, CONFIG_NAME)) as f:
            config = json.load(f)
        scores = ""
        if os.path.exists(os.path.join(folder, "evaluation.json")):
            with open(os.path.join(folder, "evaluation.json")) as f:
                median = json.load(f)["median"]["model"]
            scores = "; median SDR on held-out synthetic tracks: " + ", ".join(
                f"{t} {v['SDR']:.1f} dB" for t, v in median.items() if v["SDR"] is not None)
        rows.append((name, config["targets"], int(config["sample_rate"]), DEMO_LICENCE,
                     f"shipped demo model, embedded{scores}"))
    for name, model in {**PUBLISHED, **PUBLISHED_DEMUCS}.items():
        rows.append((name, model.targets, int(model.sample_rate), model.licence,
                     f"{model.description}; downloaded on first use"))
    return rows


def _url(url):
    mirror = os.environ.get("UMX_MODEL_MIRROR")
    for origin in (ZENODO, DEMUCS_HOST):
        if mirror and url.startswith(origin):
            return mirror.rstrip("/") + "/" + url[len(origin):]
    return url


def download(url, digest, folder, label):
    """Fetch `url` into `folder` once (a cache hit does not touch the network); returns the path.

    The file is written under a temporary name, hashed while it streams, and renamed only when
    its sha256 starts with `digest`; a mismatch deletes it and raises UMXError.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, url.rstrip("/").rsplit("/", 1)[-1])
    if os.path.exists(path):
        return path
    url = _url(url)
    sha = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    while chunk := response.read(1 << 20):
                        sha.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, OSError) as exc:
                raise UMXError(f"{label}: cannot download {url} ({getattr(exc, 'reason', exc)}); set "
                               f"UMX_MODEL_MIRROR to a reachable copy, or pass a local path") from exc
        actual = sha.hexdigest()
        if not actual.startswith(digest.lower()):
            raise UMXError(f"{label}: {url} has sha256 {actual}, expected {digest}...: refused "
                           "(corrupt or tampered download)")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def resolve(name, convert):
    """A local separator directory for a model name, or None when `name` is not a model name.

    Args:
        name: a shipped or published model's name.
        convert: `convert(paths, model, folder, metadata)`, called once per published model: save
            the separator of the downloaded files `paths` of `model` (a `PublishedModel`'s
            `{target: .pth path}`, a `PublishedDemucs`'s list of `.th` paths) into `folder` with
            `metadata` (the registry keeps files; its caller builds separators).
    """
    if name in shipped():
        return shipped()[name]
    model = published(name)
    if model is None:
        return None
    files = model.files if isinstance(model, PublishedModel) else dict(enumerate(model.files))
    key = hashlib.sha256(json.dumps(sorted((str(t), d) for t, (_, d) in files.items())).encode()).hexdigest()[:8]
    converted = os.path.join(cache_dir(), "models", f"{name}-{key}")
    if os.path.exists(os.path.join(converted, CONFIG_NAME)):
        return converted
    downloads = os.path.join(cache_dir(), "downloads", name)
    paths = {t: download(url, digest, downloads, f"{name}/{t}") for t, (url, digest) in files.items()}
    if not isinstance(model, PublishedModel):
        paths = [paths[k] for k in range(len(model.files))]
    os.makedirs(os.path.dirname(converted), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(converted), prefix=f".{name}-")  # same filesystem: atomic rename
    try:
        convert(paths, model, tmp, {"model_name": name, "licence": model.licence,
                                    "source_files": {str(t): url for t, (url, _) in files.items()}})
        os.replace(tmp, converted)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return converted
