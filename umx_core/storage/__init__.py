"""One storage layer for local paths and gs:// alike.

`tf.io.gfile` cannot reach a GCS emulator, so gs:// goes through google-cloud-storage,
which honours `STORAGE_EMULATOR_HOST` (tests run gcp-storage-emulator on loopback).
"""

import contextlib
import glob as _glob
import os
import shutil
import tempfile

from umx_core.storage import gcs
from umx_core.errors import UMXError


def is_gcs(path):
    """True for a `gs://bucket/key` path."""
    return str(path).startswith("gs://")


def split_gcs(path):
    """`gs://bucket/key` -> (bucket, key)."""
    return gcs.split(path)


def join(base, *parts):
    """Join path parts with '/' for gs:// and os.path.join locally."""
    if is_gcs(base):
        return "/".join([str(base).rstrip("/")] + [p.strip("/") for p in parts])
    return os.path.join(base, *parts)


def client():
    """A google-cloud-storage client (anonymous against an emulator)."""
    return gcs.client()


def exists(path):
    """True if the file exists (for gs://, the object)."""
    if is_gcs(path):
        with gcs.errors(path, "existence check"):
            return gcs.blob(path).exists(**gcs.calls())
    return os.path.exists(path)


def read_bytes(path):
    """The whole file as bytes; UMXError naming the path if it is missing."""
    if is_gcs(path):
        with gcs.errors(path, "read"):  # checked against the object's CRC32C (or MD5): never short
            return gcs.blob(path).download_as_bytes(checksum="auto", **gcs.calls())
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise UMXError(f"{path}: no such file") from exc


def write_bytes(path, data, metadata=None):
    """Write `data` to `path` (parents created locally; on gs:// one upload, whole or not at all).

    Args:
        metadata: gs:// only: `{key: text}` stored as the object's custom metadata, which a listing
            returns with the object (`list_objects`); ignored locally.
    """
    if is_gcs(path):
        gcs.upload(path, data=data, metadata=metadata)
        return

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    _write_local(path, write)


def _write_local(path, write):
    """`write(tmp)` beside `path`, then rename: never a half-written file under the final name."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)
    for left in _glob.glob(_glob.escape(path) + ".tmp-*"):  # of writers killed before their rename
        if not process_running(left.rsplit("-", 1)[-1]):
            with contextlib.suppress(OSError):
                os.remove(left)


def process_running(pid):
    """Whether the process `pid` (a number or its text) runs on this machine; False for this process
    (its own earlier writes are over) and for text that is no pid."""
    if not str(pid).isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, another user's
        return True
    return True


# bytes a gs:// reader fetches per request: about one excerpt; the library default (40 MiB)
# would fetch most of a track for its header
READ_CHUNK = 1 << 20


def open_read(path):
    """A seekable binary file object: a local file, or a ranged-read reader for gs://.

    Readers that seek (soundfile) then fetch only the byte ranges they read from GCS,
    in requests of `READ_CHUNK` bytes.
    """
    if is_gcs(path):
        blob = gcs.stat(path)  # one request; its size serves seeks, its generation pins every range read
        if blob is None:
            raise UMXError(f"{path}: no such file")
        return gcs.RangedReader(path, blob, READ_CHUNK)
    try:
        return open(path, "rb")
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise UMXError(f"{path}: no such file") from exc


def list_dirs(prefix):
    """Names of the immediate subdirectories of a directory (local or gs://), sorted."""
    if is_gcs(prefix):
        bucket, key = split_gcs(prefix)
        key = key.rstrip("/") + "/" if key else ""
        with gcs.errors(prefix, "listing"):
            names = {b.name[len(key) :].split("/", 1)[0] for b in client().list_blobs(bucket, prefix=key,
                                                                                     **gcs.calls())
                     if "/" in b.name[len(key) :]}
        return sorted(names)
    if not os.path.isdir(prefix):
        raise UMXError(f"{prefix}: no such directory")
    return sorted(d for d in os.listdir(prefix) if os.path.isdir(os.path.join(prefix, d)))


def list_files(prefix):
    """Every file below a directory (recursively), as full paths."""
    if is_gcs(prefix):
        return sorted(path for path, _, _ in list_objects(prefix))
    return sorted(_walk(prefix))


def _walk(folder):
    for root, _, files in os.walk(folder):
        yield from (os.path.join(root, f) for f in files)


def list_objects(prefix, match_glob=None):
    """`(path, identity, metadata)` of every file below a directory, recursively, in no set order:
    on gs:// from the listing alone (pages of 1,000 objects, no request per object), with each
    object's custom metadata; locally `identity` by stat and `metadata` empty.

    Args:
        match_glob: gs:// only, a hint: GCS may return only the names matching it (`**/x.json`);
            callers filter the names themselves.
    """
    if is_gcs(prefix):
        bucket, key = split_gcs(prefix)
        key = key.rstrip("/") + "/" if key else ""
        hint = {"match_glob": key + match_glob} if match_glob else {}
        with gcs.errors(prefix, "listing"):
            for b in client().list_blobs(bucket, prefix=key, **hint, **gcs.calls()):
                yield (f"gs://{bucket}/{b.name}", {"generation": int(b.generation), "size": int(b.size)},
                       dict(b.metadata or {}))
        return
    for path in _walk(prefix):
        try:
            yield path, identity(path), {}
        except UMXError:  # removed since it was listed
            continue


def upload_file(path, target):
    """Copy one local file to `target` (local or gs://); a local copy appears whole or not at all."""
    if is_gcs(target):
        gcs.upload(target, filename=path)
        return
    _write_local(target, lambda tmp: shutil.copyfile(path, tmp))


def upload_dir(local_dir, dest):
    """Copy a local directory tree to `dest` (local or gs://)."""
    for path in list_files(local_dir):
        rel = os.path.relpath(path, local_dir).replace(os.sep, "/")
        upload_file(path, join(dest, rel))


@contextlib.contextmanager
def local_dir(path):
    """A local directory with the contents of `path`: itself, or a temporary download of gs://."""
    if not is_gcs(path):
        if not os.path.isdir(path):
            raise UMXError(f"{path}: no such directory")
        yield path
        return
    files = list_files(path)
    if not files:
        raise UMXError(f"{path}: no such directory (no objects under it)")
    base = path.rstrip("/") + "/"
    with tempfile.TemporaryDirectory(prefix="umx-") as tmp:
        for f in files:
            target = os.path.join(tmp, f[len(base) :])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with gcs.errors(f, "download"):
                gcs.blob(f).download_to_filename(target, checksum="auto", **gcs.calls())
        yield tmp


def delete(path):
    """Remove a file if it exists (local or gs://)."""
    if is_gcs(path):
        try:  # one request (a retry whose first try landed finds nothing: fine)
            with gcs.errors(path, "delete"):
                gcs.blob(path).delete(**gcs.calls())
        except UMXError as exc:
            if "no such file" not in str(exc):
                raise
    elif os.path.exists(path):
        os.remove(path)


def identity(path):
    """What changes whenever a file's content is replaced, read from metadata alone (no download):
    `{"generation", "size"}` for gs:// (a new object gets a new generation), `{"size", "mtime_ns"}`
    locally. UMXError naming the path if it is missing."""
    if is_gcs(path):
        blob = gcs.stat(path)
        if blob is None:
            raise UMXError(f"{path}: no such file")
        return {"generation": int(blob.generation), "size": int(blob.size)}
    try:
        stat = os.stat(path)
    except FileNotFoundError as exc:
        raise UMXError(f"{path}: no such file") from exc
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def checksum(path):
    """A content digest without downloading twice: `md5:<hex>` from gs:// metadata, `sha256:<hex>` locally."""
    if is_gcs(path):
        blob = gcs.stat(path)
        if blob is None:
            raise UMXError(f"{path}: no such file")
        if blob.md5_hash:
            import base64

            return "md5:" + base64.b64decode(blob.md5_hash).hex()
        return f"crc32c:{blob.crc32c}"
    return file_digest(path, "sha256")


def file_digest(path, algorithm):
    """`algorithm:hex` of a local file's bytes, read in blocks (`algorithm`: a hashlib name)."""
    import hashlib

    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return f"{algorithm}:{digest.hexdigest()}"


def glob_base(pattern):
    """The folder a pattern's matches are relative to: its part before the first wildcard, up to a '/'."""
    cut = min((pattern.index(c) for c in "*?[" if c in pattern), default=None)
    if cut is None:
        return pattern.rsplit("/", 1)[0] if "/" in pattern else ""
    head = pattern[:cut]
    return head.rsplit("/", 1)[0] if "/" in head else ""


def glob(pattern):
    """Files matching a pattern, sorted (local or gs://; `**` spans folders). A pattern without
    wildcards is returned as it is, existing or not; a folder gives every file below it."""
    return [path for path, _ in glob_identities(pattern)]


def glob_identities(pattern):
    """`[(path, identity)]` of `glob(pattern)`: on gs:// each file's `identity` as its listing gave
    it (no request per file); None where nothing was listed (locally, a stat costs nothing)."""
    import fnmatch

    wild = any(c in pattern for c in "*?[")
    if is_gcs(pattern):
        if not wild:
            return [(pattern, None)]
        listed = list_objects(glob_base(pattern))
        return sorted(((path, ident) for path, ident, _ in listed if fnmatch.fnmatchcase(path, pattern)),
                      key=lambda item: item[0])
    if os.path.isdir(pattern):
        paths = list_files(pattern)
    elif not wild:
        paths = [pattern]
    else:
        paths = sorted(p for p in _glob.glob(pattern, recursive=True) if os.path.isfile(p))
    return [(path, None) for path in paths]
