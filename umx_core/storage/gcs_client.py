"""The GCS transport under `umx_core.storage.gcs` (call `umx_core.storage`, not this one): the client,
the retry policy every request goes through, retry-safe uploads, ranged reads, and errors turned
into UMXError.

Retries are the client library's: `google.cloud.storage.retry.DEFAULT_RETRY`'s predicate (429, 408,
500, 502, 503, 504, connection resets, timeouts, bodies cut short of their Content-Length) with
exponential backoff and a deadline, `RETRY` below. A whole download is checked against the object's
CRC32C/MD5 (`checksum="auto"`); a ranged read is pinned to the object's generation, so a read never
mixes two versions of a file. An upload is retried only under a precondition on the generation it
replaces (`if_generation_match`, 0 for a new object), as Google's retry strategy asks: a retry whose
first try had landed finds its own bytes there and succeeds; bytes another writer put there in
between are never overwritten by a late retry (the upload fails instead, naming the path).
"""

import base64
import contextlib
import functools
import hashlib
import io
import os

from umx_core.errors import UMXError

# seconds; Google's recommended exponential backoff (1 s doubling, at most 32 s between tries) and
# the client libraries' usual deadline. A call still failing after RETRY_DEADLINE fails its track only.
RETRY_INITIAL, RETRY_MAXIMUM, RETRY_DEADLINE = 1.0, 32.0, 120.0
TIMEOUT = (10.0, 60.0)  # (connect, read) seconds of one HTTP request; a stalled read is retried
RETRY = None  # the policy in use; None: `default_retry()` (tests put a faster one here)


def default_retry():
    """The library's retry predicate with our backoff and deadline."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_delay(initial=RETRY_INITIAL, maximum=RETRY_MAXIMUM, multiplier=2.0).with_timeout(
        RETRY_DEADLINE)


def retry():
    """The retry policy every request passes (`RETRY`, or the default)."""
    return RETRY if RETRY is not None else default_retry()


def calls():
    """Keyword arguments of every library call: the retry policy and the per-request timeout."""
    return {"retry": retry(), "timeout": TIMEOUT}


@functools.lru_cache(maxsize=None)
def _client(emulator):
    from google.cloud import storage

    if emulator:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project="emulator", credentials=AnonymousCredentials())
    return storage.Client()


def client():
    """A google-cloud-storage client (anonymous against an emulator)."""
    return _client(os.environ.get("STORAGE_EMULATOR_HOST", ""))


def split(path):
    """`gs://bucket/key` -> (bucket, key)."""
    bucket, _, key = str(path)[len("gs://") :].partition("/")
    if not bucket:
        raise UMXError(f"{path}: not a gs://bucket/... path")
    return bucket, key


def blob(path):
    """The object at `path`, unpinned (whatever generation is live)."""
    bucket, key = split(path)
    return client().bucket(bucket).blob(key)


def stat(path):
    """The live object with its metadata (generation, size, hashes), or None."""
    bucket, key = split(path)
    with errors(path, "metadata read"):
        return client().bucket(bucket).get_blob(key, **calls())


@contextlib.contextmanager
def errors(path, action, missing="no such file"):
    """Any failure of the library inside: a UMXError naming `path` (NotFound: `missing`)."""
    try:
        yield
    except UMXError:
        raise
    except Exception as exc:  # the library raises api_core, requests, urllib3 and its own errors
        if type(exc).__name__ == "NotFound":
            raise UMXError(f"{path}: {missing}") from exc
        cause = exc.__cause__ if type(exc).__name__ == "RetryError" and exc.__cause__ else exc
        raise UMXError(f"{path}: GCS {action} failed ({type(cause).__name__}: {cause}); "
                       f"transient errors were retried for up to {retry().timeout:g} s") from exc


def _md5(data=None, filename=None):
    digest = hashlib.md5()
    if filename is None:
        digest.update(data)
    else:
        with open(filename, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return base64.b64encode(digest.digest()).decode()


def upload(path, data=None, filename=None, metadata=None):
    """Store `data` (bytes) or a local file at `path` (with custom `metadata`, `{key: text}`),
    retried under a generation precondition."""
    from google.api_core.exceptions import PreconditionFailed

    current = stat(path)
    expected = current.generation if current is not None else 0
    target = blob(path)
    target.metadata = metadata
    with errors(path, "write"):
        try:
            if filename is None:
                target.upload_from_string(data, if_generation_match=expected, **calls())
            else:
                target.upload_from_filename(filename, if_generation_match=expected, **calls())
            return
        except PreconditionFailed:
            # a retry whose first try had landed (its own bytes are there), or another writer
            landed = stat(path)
        if landed is None or landed.md5_hash != _md5(data, filename):
            raise UMXError(f"{path}: another writer replaced it while this one wrote it; not overwritten")


class ShortRead(ConnectionError):
    """A range read that brought fewer bytes than the object holds there (retried as a reset is)."""


class RangedReader(io.RawIOBase):
    """A seekable reader of one generation of an object, fetching `chunk` bytes per request.

    Every range read is retried by `retry()` and checked for length, so a body cut short is never
    returned as data. Audio decoders call `readinto` from C and lose exceptions there, so the
    failure that stopped a read is also kept in `error` for the caller to raise.
    """

    def __init__(self, path, blob, chunk):
        super().__init__()
        self.path, self._blob, self._chunk = path, blob, int(chunk)
        self.size, self._pos, self.error = int(blob.size), 0, None
        self._cache, self._cache_start = b"", 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, pos, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = min(max(0, base + pos), self.size)
        return self._pos

    def readinto(self, buffer):
        """Fill `buffer` whole (decoders take a short read for the end of the file), or to the end."""
        want, filled = min(len(buffer), self.size - self._pos), 0
        while filled < want:
            offset = self._pos - self._cache_start
            if not 0 <= offset < len(self._cache):
                self._cache_start, offset = self._pos, 0
                self._cache = self._fetch(self._pos, min(self._pos + max(want - filled, self._chunk), self.size) - 1)
            data = self._cache[offset : offset + want - filled]
            buffer[filled : filled + len(data)] = data
            filled += len(data)
            self._pos += len(data)
        return filled

    def _fetch(self, start, end):
        """Bytes `[start, end]` (inclusive, as HTTP ranges) of the pinned generation."""

        def once():
            data = self._blob.download_as_bytes(start=start, end=end, checksum=None, retry=None, timeout=TIMEOUT)
            if len(data) != end - start + 1:
                raise ShortRead(f"bytes {start}-{end}: {len(data)} bytes came")
            return data

        try:
            with errors(self.path, "range read", missing="replaced or removed while it was read"):
                return retry()(once)()
        except UMXError as exc:
            self.error = exc
            raise
