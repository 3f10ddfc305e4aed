"""One storage layer for local paths and gs:// alike: each operation goes to `local` or `gcs` by the
path's scheme, and every package calls this module, never a backend.

`tf.io.gfile` cannot reach a GCS emulator, so gs:// goes through google-cloud-storage
(`gcs_client`), which honours `STORAGE_EMULATOR_HOST` (tests run gcp-storage-emulator on loopback).
"""

import fnmatch
import glob as _glob
import os

from umx_core.storage import gcs, gcs_client, local
from umx_core.storage.local import file_digest, process_running

__all__ = ["is_gcs", "split_gcs", "join", "client", "exists", "read_bytes", "write_bytes", "open_read", "list_dirs",
           "list_files", "list_objects", "upload_file", "upload_dir", "local_dir", "delete", "identity", "checksum",
           "file_digest", "process_running", "glob_base", "glob", "glob_identities"]


def is_gcs(path):
    """True for a `gs://bucket/key` path."""
    return str(path).startswith("gs://")


def _backend(path):
    return gcs if is_gcs(path) else local


def split_gcs(path):
    """`gs://bucket/key` -> (bucket, key)."""
    return gcs_client.split(path)


def join(base, *parts):
    """Join path parts with '/' for gs:// and os.path.join locally."""
    if is_gcs(base):
        return "/".join([str(base).rstrip("/")] + [p.strip("/") for p in parts])
    return os.path.join(base, *parts)


def client():
    """A google-cloud-storage client (anonymous against an emulator)."""
    return gcs_client.client()


def exists(path):
    """True if the file exists (for gs://, the object)."""
    return _backend(path).exists(path)


def read_bytes(path):
    """The whole file as bytes (a gs:// download checked against the object's CRC32C or MD5);
    UMXError naming the path if it is missing."""
    return _backend(path).read_bytes(path)


def write_bytes(path, data, metadata=None):
    """Write `data` to `path`: locally under a temporary name renamed into place (parents created),
    on gs:// one upload, whole or not at all.

    Args:
        metadata: gs:// only: `{key: text}` stored as the object's custom metadata, which a listing
            returns with the object (`list_objects`); ignored locally.
    """
    _backend(path).write_bytes(path, data, metadata)


def open_read(path):
    """A seekable binary file object: a local file, or a ranged-read reader for gs://.

    Readers that seek (soundfile) then fetch only the byte ranges they read from GCS, in requests
    of `gcs.READ_CHUNK` bytes.
    """
    return _backend(path).open_read(path)


def list_dirs(prefix):
    """Names of the immediate subdirectories of a directory (local or gs://), sorted."""
    return _backend(prefix).list_dirs(prefix)


def list_files(prefix):
    """Every file below a directory (recursively), as full paths, sorted."""
    return sorted(path for path, _, _ in list_objects(prefix)) if is_gcs(prefix) else sorted(local.walk(prefix))


def list_objects(prefix, match_glob=None):
    """`(path, identity, metadata)` of every file below a directory, recursively, in no set order:
    on gs:// from the listing alone (pages of 1,000 objects, no request per object), with each
    object's custom metadata; locally `identity` by stat and `metadata` empty.

    Args:
        match_glob: gs:// only, a hint: GCS may return only the names matching it (`**/x.json`);
            callers filter the names themselves.
    """
    return _backend(prefix).list_objects(prefix, match_glob)


def upload_file(path, target):
    """Copy one local file to `target` (local or gs://); it appears whole or not at all."""
    _backend(target).upload_file(path, target)


def upload_dir(local_dir, dest):
    """Copy a local directory tree to `dest` (local or gs://)."""
    for path in list_files(local_dir):
        rel = os.path.relpath(path, local_dir).replace(os.sep, "/")
        upload_file(path, join(dest, rel))


def local_dir(path):
    """A context manager: a local directory with the contents of `path` (itself, or a temporary
    download of gs://)."""
    return _backend(path).local_dir(path)


def delete(path):
    """Remove a file if it exists (local or gs://)."""
    _backend(path).delete(path)


def identity(path):
    """What changes whenever a file's content is replaced, read from metadata alone (no download):
    `{"generation", "size"}` for gs:// (a new object gets a new generation), `{"size", "mtime_ns"}`
    locally. UMXError naming the path if it is missing."""
    return _backend(path).identity(path)


def checksum(path):
    """A content digest without downloading twice: `md5:<hex>` from gs:// metadata, `sha256:<hex>` locally."""
    return _backend(path).checksum(path)


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
