"""The gs:// backend of `umx_core.storage` (call that module, not this one): each file operation on
objects, through the client, retries and error handling of `gcs_client`."""

import base64
import contextlib
import os
import tempfile

from umx_core.errors import UMXError
from umx_core.storage import gcs_client
from umx_core.storage.gcs_client import calls, errors, split

# bytes a reader fetches per request: about one excerpt; the library default (40 MiB) would fetch
# most of a track for its header
READ_CHUNK = 1 << 20


def exists(path):
    """Whether the object exists."""
    with errors(path, "existence check"):
        return gcs_client.blob(path).exists(**calls())


def read_bytes(path):
    """The whole object, checked against its CRC32C (or MD5)."""
    with errors(path, "read"):  # checked against the object's CRC32C (or MD5): never short
        return gcs_client.blob(path).download_as_bytes(checksum="auto", **calls())


def write_bytes(path, data, metadata=None):
    """One upload of `data` (with custom `metadata`), whole or not at all."""
    gcs_client.upload(path, data=data, metadata=metadata)


def upload_file(path, target):
    """One upload of the local file `path` to the object `target`."""
    gcs_client.upload(target, filename=path)


def open_read(path):
    """A seekable reader of the live generation, fetching `READ_CHUNK` bytes per request."""
    blob = gcs_client.stat(path)  # one request; its size serves seeks, its generation pins every range read
    if blob is None:
        raise UMXError(f"{path}: no such file")
    return gcs_client.RangedReader(path, blob, READ_CHUNK)


def _folder_key(prefix):
    bucket, key = split(prefix)
    return bucket, key.rstrip("/") + "/" if key else ""


def list_dirs(prefix):
    """The names of the immediate "folders" below a prefix, sorted."""
    bucket, key = _folder_key(prefix)
    with errors(prefix, "listing"):
        return sorted({b.name[len(key) :].split("/", 1)[0]
                       for b in gcs_client.client().list_blobs(bucket, prefix=key, **calls())
                       if "/" in b.name[len(key) :]})


def list_objects(prefix, match_glob=None):
    """`(path, identity, metadata)` of every object below a prefix, from the listing alone."""
    bucket, key = _folder_key(prefix)
    hint = {"match_glob": key + match_glob} if match_glob else {}
    with errors(prefix, "listing"):
        for b in gcs_client.client().list_blobs(bucket, prefix=key, **hint, **calls()):
            yield (f"gs://{bucket}/{b.name}", {"generation": int(b.generation), "size": int(b.size)},
                   dict(b.metadata or {}))


@contextlib.contextmanager
def local_dir(path):
    """A temporary local copy of every object below `path`."""
    files = sorted(p for p, _, _ in list_objects(path))
    if not files:
        raise UMXError(f"{path}: no such directory (no objects under it)")
    base = path.rstrip("/") + "/"
    with tempfile.TemporaryDirectory(prefix="umx-") as tmp:
        for f in files:
            target = os.path.join(tmp, f[len(base) :])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with errors(f, "download"):
                gcs_client.blob(f).download_to_filename(target, checksum="auto", **calls())
        yield tmp


def delete(path):
    """Remove the object; an object already gone is fine."""
    try:  # one request (a retry whose first try landed finds nothing: fine)
        with errors(path, "delete"):
            gcs_client.blob(path).delete(**calls())
    except UMXError as exc:
        if "no such file" not in str(exc):
            raise


def identity(path):
    """`{"generation", "size"}` of the live object."""
    blob = gcs_client.stat(path)
    if blob is None:
        raise UMXError(f"{path}: no such file")
    return {"generation": int(blob.generation), "size": int(blob.size)}


def checksum(path):
    """`md5:<hex>` (or `crc32c:<value>`) from the object's metadata."""
    blob = gcs_client.stat(path)
    if blob is None:
        raise UMXError(f"{path}: no such file")
    if blob.md5_hash:
        return "md5:" + base64.b64decode(blob.md5_hash).hex()
    return f"crc32c:{blob.crc32c}"
