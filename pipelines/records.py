"""Completeness records as a listing of the output sees them: the skip check without a request per track.

A record (`separation.json`) on gs:// carries, as the object's custom metadata, the three facts the
skip check needs: the fingerprint, the input, and the input's identity. One listing of the output
(pages of 1,000 objects, `ListRecords`) then tells `Plan` which tracks are complete, and the
inputs' own listing (`Expand`) gives their identities: a complete track costs no request of its
own. Whatever the metadata cannot settle (a record without it, written before; another input's
record; a changed identity, which the record's input checksum may still accept) is decided by the
record's body as before. Local outputs are read record by record: a local read costs no request.
"""

import dataclasses
import json
import logging

import apache_beam as beam

from umx_core import storage
from umx_core.errors import UMXError
from umx_core.settings import RECORD_NAME

KEYS = ("umx-fingerprint", "umx-input", "umx-input-identity")


def identity_text(identity):
    """An input's identity (`storage.identity`) as the hashable text records and listings compare."""
    return None if identity is None else json.dumps(identity, sort_keys=True)


def record_metadata(record):
    """The custom metadata a record is stored with (gs://), from the record itself."""
    return dict(zip(KEYS, (record["fingerprint"], record["input"], identity_text(record["input_identity"]))))


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
                    yield folder, ListedRecord(*(metadata.get(key) for key in KEYS))
        except (UMXError, OSError) as exc:
            logging.getLogger(__name__).warning("%s: cannot list the records (%s); each one is read instead",
                                                output, exc)
            yield beam.pvalue.TaggedOutput("complete", False)
            return
        yield beam.pvalue.TaggedOutput("complete", True)
