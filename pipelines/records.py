"""What the catalog job records of each track, and how it checks a record: `separation.json` beside
the stems, written last, naming the fingerprint (the weights' digest and the settings that change
the stems), the input's identity and checksum, and each stem's checksum.

A record is only ever written beside the stems it names: `PlacedStems` keeps what this attempt
placed, and `check_placed` refuses a record when another attempt's stems replaced some of them.

Records as a listing of the output sees them: the skip check without a request per track.

A record (`separation.json`) on gs:// carries, as the object's custom metadata, the three facts the
skip check needs: the fingerprint, the input (percent-encoded: GCS's XML API and its downloads
return metadata as HTTP headers, which hold ASCII only), and the input's identity. One listing of
the output (pages of 1,000 objects, `ListRecords`) then tells `Plan` which tracks are complete,
and the inputs' own listing (`Expand`) gives their identities: a complete track costs no request
of its own. Whatever the metadata cannot settle (a record without it, written before; another input's
record; a changed identity, which the record's input checksum may still accept) is decided by the
record's body as before. Local outputs are read record by record: a local read costs no request.
"""

import dataclasses
import hashlib
import json
import logging
import os
import urllib.parse

import apache_beam as beam

from umx_core import storage
from umx_core.errors import UMXError, printable

RECORD_NAME = "separation.json"  # beside a track's stems, written last: the track is complete
KEYS = ("umx-fingerprint", "umx-input", "umx-input-identity")


def fingerprint(settings_fields, model_digest):
    """A short digest of the output settings and the model's weights: what a complete record must match."""
    blob = json.dumps({**settings_fields, "model_digest": model_digest}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_digest(path):
    """A sha256 naming a model's weights: of every file of a model folder (or of the model file),
    read in blocks; for a published model name, of its pinned release files. What the fingerprint
    names, so new weights under an old path are separated again.

    Raises:
        UMXError when the model cannot be found or read.
    """
    from umx_core import registry

    path = str(path)
    digest = hashlib.sha256()
    if registry.published(path) is not None:
        digest.update(json.dumps(registry.published(path).files, sort_keys=True).encode())
        return digest.hexdigest()
    root = (registry.shipped().get(path) or path).rstrip("/")
    if storage.is_gcs(root):
        files = [root] if storage.exists(root) else storage.list_files(root)  # a model file, or a folder
    else:
        files = storage.list_files(root) if os.path.isdir(root) else [root] if os.path.exists(root) else []
    if not files:
        raise UMXError(f"{path}: no model files to fingerprint")
    for name in sorted(files):
        digest.update(name[len(root):].encode() + b"\0")
        with storage.open_read(name) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def placed_identity(path):
    """What tells the file now at `path` from any other written there later, cheaply: its checksum
    on gs:// (from metadata: the MD5 GCS computed), its inode, size and mtime locally (no read)."""
    if storage.is_gcs(path):
        return storage.checksum(path)
    stat = os.stat(path)
    return {"inode": stat.st_ino, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class PlacedStems:
    """What one attempt placed: `{target: (checksum, identity)}`, from the stem writers' `on_place`.

    The checksum is what `storage.checksum(target)` says once the file is stored (md5 for gs://,
    where GCS computes it on upload; sha256 locally); the identity what `placed_identity` says
    (a local rename keeps inode, size and mtime)."""

    def __init__(self):
        self.placed = {}

    def __call__(self, local, target):
        checksum = storage.file_digest(local, "md5" if storage.is_gcs(target) else "sha256")
        self.placed[target] = (checksum, checksum if storage.is_gcs(target) else placed_identity(local))

    def checksums(self, stems):
        """`{stem name: checksum}` of the stems `{name: target}` this attempt placed."""
        return {name: self.placed[target][0] for name, target in stems.items()}


def check_placed(outdir, stems, placed, record_path):
    """Remove the record at `record_path` and raise UMXError (stage "write") unless every stem
    `{name: target}` in the folder is the one this attempt placed (`PlacedStems`): another attempt
    at the same track (an overlapping run, a retried bundle) may have replaced some while this one
    placed its own. Checked before and after the record is written, so whichever attempt writes
    last sees the other's stems, and a record stays only beside the stems it names. Cheap: gs://
    one metadata read per stem, locally a stat; only a stem that is another file is read, to compare
    its checksum (the same bytes from another attempt are the record's stems all the same)."""
    replaced = []
    for name, path in stems.items():
        checksum, identity = placed.placed[path]
        try:
            if placed_identity(path) != identity and storage.checksum(path) != checksum:
                replaced.append(name)
        except (UMXError, OSError):
            replaced.append(name)
    if replaced:
        storage.delete(record_path)
        raise UMXError(f"{outdir}: its {', '.join(replaced)} stem(s) were replaced by another attempt at the "
                       f"same track while this one wrote them (an overlapping run?); not marked complete, the next "
                       f"run separates it again", stage="write")


def identity_text(identity):
    """An input's identity (`storage.identity`) as the hashable text records and listings compare."""
    return None if identity is None else json.dumps(identity, sort_keys=True)


def record_metadata(record):
    """The custom metadata a record is stored with (gs://), from the record itself: ASCII only (a
    header's), the input percent-encoded (`ListRecords` decodes it)."""
    metadata = (record["fingerprint"], urllib.parse.quote(record["input"], safe="/:"),
                identity_text(record["input_identity"]))
    return dict(zip(KEYS, metadata))


@dataclasses.dataclass(frozen=True)
class ListedRecord:
    """A record as the output's listing shows it: its metadata, or Nones (a record written without)."""

    fingerprint: str = None
    input: str = None
    input_identity: str = None  # `identity_text`

    def stale(self, fingerprint, path):
        """Whether the record says, by itself, that it is `path`'s for other weights or settings
        (nothing in its body could make it complete then)."""
        return self.fingerprint is not None and self.fingerprint != fingerprint and self.input == path

    def completes(self, fingerprint, path, identity):
        """Whether the record says, by itself, that `path` with this `identity_text` is complete
        for `fingerprint` (False: the record's body decides)."""
        return (identity is not None and self.fingerprint == fingerprint and self.input == path
                and self.input_identity == identity)


class ListRecords(beam.DoFn):
    """The output root -> `(folder, ListedRecord)` for every record under it (gs://), and under the
    tag "complete" one boolean: whether the listing is whole (False locally, or when the listing
    failed: then no folder's absence from it means anything, and every record is read)."""

    def process(self, output):
        if not storage.is_gcs(output):
            yield beam.pvalue.TaggedOutput("complete", False)
            return
        try:
            for path, _, metadata in storage.list_objects(output, match_glob=f"**/{RECORD_NAME}"):
                folder, _, name = path.rpartition("/")
                if name == RECORD_NAME:
                    fp, quoted, identity = (metadata.get(key) for key in KEYS)
                    # a record written before the input was encoded may decode to another name: then
                    # its listing settles nothing (`ListedRecord`) and its body decides
                    yield folder, ListedRecord(fp, None if quoted is None else urllib.parse.unquote(quoted), identity)
        except (UMXError, OSError) as exc:
            logging.getLogger(__name__).warning("%s: cannot list the records (%s); each one is read instead",
                                                printable(output), printable(exc))
            yield beam.pvalue.TaggedOutput("complete", False)
            return
        yield beam.pvalue.TaggedOutput("complete", True)
