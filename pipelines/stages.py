"""The catalog job's stages before and after inference: plain DoFns and a CombineFn, each
counting what it did under the `separate_catalog` namespace.

Expand (patterns and lists -> tracks, on the workers) -> Claim (one input per output folder)
-> Plan (skip what is complete, read each header) -> [inference, `pipelines.handler`] ->
Summarize -> WriteSummary (`pipelines.summary`).
Every failure becomes a status record with a stage ("match", "output", "decode", "separate",
"write") that ends in `{output}/_failed/{run}.jsonl`; nothing here raises out of a bundle.
"""

import dataclasses
import json
import os
import unicodedata

import apache_beam as beam

from pipelines.records import RECORD_NAME, ListedRecord, identity_text
from umx_core import storage
from umx_core.errors import UMXError, printable
from umx_core.outputs import claim, is_inside, output_name

NAMESPACE = "separate_catalog"


def count(name, value=1):
    """Add to one of the job's counters."""
    beam.metrics.Metrics.counter(NAMESPACE, name).inc(value)


def failure(error, **extra):
    """A failed track's (or pattern's) status record, from the UMXError that stopped it (its path and
    stage); its message as `printable` text, so a name in it cannot corrupt a terminal or a log line."""
    count("failed")
    return {"path": error.path, "status": "failed", "stage": error.stage, "error": printable(error), **extra}


def match_failure(value, kind, problem):
    """The status record of a pattern or list (`kind`) that names no input."""
    return failure(UMXError(str(problem), path=value, stage="match"), kind=kind)


@dataclasses.dataclass(frozen=True)
class TrackJob:
    """One input track and the folder its stems go to."""

    path: str
    out: str
    seconds: float = 0.0
    identity: dict = None  # `storage.identity` of the input when it was planned


def relative_output(path, base):
    """`path` relative to `base`, without its extension (a list entry without base: bucket/key).

    The job's own folders (`_failed`, `_runs`, `_manifest`: every top-level name that starts with
    "_") are never a track's: such a name gets one more "_" (`_failed/x` -> `__failed/x`, and a
    real `__failed` -> `___failed`, so no two names meet). Any other name is its folder's as it
    is, so two inputs share a folder only where `ClaimFolders` sees them meet.

    Raises:
        UMXError (stage "output") for a name that would leave the output folder (`..`, `.` or
        empty segments), holds a control character (Unicode's category Cc: U+0000-U+001F, DEL
        and U+0080-U+009F, NEL among them; object names are whoever uploads them), or is not
        UTF-8 (a local file name of other bytes; its path in the failure shows them as `\\xNN`).
    """
    if not is_utf8(path):
        # Beam's coders, the records, the manifest and gs:// hold UTF-8 text only, and an escaped
        # stand-in could be another file's real name: the track fails, naming it
        shown = printable(path)
        raise UMXError(f"{shown}: its name is not UTF-8 text (each byte that is not is shown as \\xNN); the job "
                       f"names tracks in UTF-8 (Beam, records, manifest, gs://): rename it", path=shown, stage="output")
    if base:
        rel = path[len(base):].lstrip("/")
    else:
        rel = path[len("gs://"):] if storage.is_gcs(path) else os.path.abspath(path).lstrip("/")
    folder = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
    rel = folder + output_name(rel)
    segments = rel.split("/")
    if any(segment in ("", ".", "..") for segment in segments) or any(unicodedata.category(c) == "Cc" for c in rel):
        raise UMXError(f"{printable(path)}: its output folder would be {printable(rel)}, which leaves the output "
                       f"folder or holds control characters; rename it", path=path, stage="output")
    return "_" + rel if rel.startswith("_") else rel


def is_utf8(name):
    """Whether `name` is text that encodes as UTF-8: what a name must be to travel through the job
    (a local file name of other bytes reaches Python with surrogates, from `os.fsdecode`)."""
    try:
        name.encode("utf-8")
    except (UnicodeEncodeError, AttributeError):
        return False
    return True


class ExpandInputs(beam.DoFn):
    """A pattern or a list file -> `(output folder, (input path, identity_text or None))`, listed on
    the worker (a gs:// listing gives each input's identity; a list file gives none).

    Nothing inside the job's own output is an input. A pattern or list that names no file is a
    failure (stage "match"), so a typo in a scheduled job is seen. A list may also be a failure
    list (`{output}/_failed/{run}.jsonl`): each failed track goes back into the folder its first
    run chose, and a pattern or list that failed to expand is expanded again."""

    def __init__(self, output):
        self.output = output

    def process(self, source):
        kind, value = source
        try:
            items = list(self._expand(kind, value))
        except (UMXError, OSError) as exc:
            yield beam.pvalue.TaggedOutput("failed", match_failure(value, kind, exc))
            return
        found = 0
        for item in items:
            if isinstance(item, beam.pvalue.TaggedOutput):
                yield item
            elif not is_inside(item[0], self.output):
                found += 1
                yield item[1], (item[0], item[2] if len(item) > 2 else None)
        if not found and not any(isinstance(item, beam.pvalue.TaggedOutput) for item in items):
            count("unmatched")
            what = "lists no file" if kind == "list" else "matches no file"
            inside = " outside the output folder" if items else ""
            yield beam.pvalue.TaggedOutput("failed", match_failure(value, kind, f"{value}: {what}{inside}"))

    def _expand(self, kind, value):
        if kind == "list":
            # lines end at "\n" alone (U+2028 or NEL may be inside a name); a line that is not UTF-8
            # is one path that fails alone (`relative_output`)
            lines = storage.read_bytes(value).decode("utf-8", "surrogateescape").split("\n")
            listed = [line.strip(" \t\r") for line in lines]
            listed = [line for line in listed if line and not line.startswith("#")]
            if any(line.startswith("{") for line in listed):
                yield from self._failure_records(value, listed)
            else:
                yield from (self._item(line, "", None) for line in listed)
        else:
            base = storage.glob_base(value)
            yield from (self._item(path, base, identity_text(ident)) for path, ident in storage.glob_identities(value))

    def _item(self, path, base, identity):
        """`(path, output folder, identity)`, or the failure of a name no output folder can take."""
        try:
            return path, storage.join(self.output, relative_output(path, base)), identity
        except UMXError as exc:
            return beam.pvalue.TaggedOutput("failed", failure(exc))

    def _failure_records(self, listing, lines):
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                path = record["path"]
                if not is_utf8(path) or not (record.get("output") is None or is_utf8(record["output"])):
                    raise TypeError("a path that is not UTF-8 text")
            except (ValueError, KeyError, TypeError, AttributeError):
                raise UMXError(f"{listing}: line {number} is neither a path nor a failure record") from None
            if record.get("output"):
                yield path, record["output"]
                continue
            kind = "list" if record.get("kind") == "list" else "glob"  # a failure to expand: expand it again
            try:
                items = list(self._expand(kind, path))
            except (UMXError, OSError) as exc:
                items = [beam.pvalue.TaggedOutput("failed", match_failure(path, kind, exc))]
            yield from items or [beam.pvalue.TaggedOutput("failed", match_failure(path, kind, f"{path}: matches no file"))]


class ClaimFolders(beam.DoFn):
    """`(output folder, [(input path, identity) and the folder's ListedRecord, if listed])` -> one
    `(path, folder, identity, ListedRecord or None)`: a path listed twice is separated once, and of
    two inputs that map to one folder (`song.wav`, `song.flac`) the one its record already names
    keeps it, else the one that sorts first; the others fail (stage "output"). A folder no input
    maps to (listed only) gives nothing."""

    def process(self, element):
        folder, values = element
        listed = next((v for v in values if isinstance(v, ListedRecord)), None)
        found = dict(v for v in values if not isinstance(v, ListedRecord))  # path -> identity
        paths = sorted(found)
        if not paths:
            return
        if len(paths) > 1:
            count("collisions", len(paths) - 1)
            holder = _record_input(folder)
            kept, refused = claim(folder, paths, holder)
            for path, error in refused.items():
                yield beam.pvalue.TaggedOutput("failed", failure(error, output=folder))
            paths = [kept]
        yield paths[0], folder, found[paths[0]], listed


def _record(folder):
    """The completeness record in `folder`, or None (missing or unreadable: not complete)."""
    try:
        return json.loads(storage.read_bytes(storage.join(folder, RECORD_NAME)))
    except (UMXError, OSError, ValueError):
        return None


def _record_input(folder):
    record = _record(folder)
    return record.get("input") if isinstance(record, dict) else None


class Plan(beam.DoFn):
    """Skip what is complete; refuse a folder that holds another input's stems; read each header
    (the duration for batching, and a first check).

    Items are `(path, folder)`, or `(path, folder, identity_text, ListedRecord)` from `ClaimFolders`;
    with `listed` (the side input: the output's listing is whole, `pipelines.records`) a folder
    without a ListedRecord has no record, and a ListedRecord that settles the check is not read."""

    def __init__(self, fingerprint, overwrite):
        self.fingerprint, self.overwrite = fingerprint, overwrite

    def process(self, item, listed=False):
        from umx_core import audio

        path, out, known, entry = (*item, None, None)[:4]
        count("found")
        if not self.overwrite and listed and entry is not None and entry.completes(self.fingerprint, path, known):
            count("skipped")
            yield beam.pvalue.TaggedOutput("skipped", {"path": path, "status": "skipped"})
            return
        # nothing to read: no record, one for other settings, or --overwrite
        unread = self.overwrite or (listed and (entry is None or entry.stale(self.fingerprint, path)))
        record = None if unread else _record(out)  # one read: a missing record is None
        if isinstance(record, dict):
            if record.get("input") not in (None, path):
                yield beam.pvalue.TaggedOutput("failed", failure(UMXError(
                    f"{path}: its stems would go to {out}, which holds the stems of {record['input']}; rename one, "
                    f"or pass --overwrite to replace them", path=path, stage="output"), output=out))
                return
        try:
            identity = json.loads(known) if known else storage.identity(path)
            if isinstance(record, dict) and record.get("fingerprint") == self.fingerprint and \
                    same_input(record, path, identity):
                count("skipped")
                yield beam.pvalue.TaggedOutput("skipped", {"path": path, "status": "skipped"})
                return
            seconds = audio.info(path).duration
        except UMXError as exc:  # the input's identity or header cannot be read
            yield beam.pvalue.TaggedOutput("failed", failure(UMXError(str(exc), path=path, stage="decode"), output=out))
            return
        yield TrackJob(path, out, seconds, identity)


def same_input(record, path, identity):
    """Whether the input is still the one the record's stems came from: its cheap identity (gs://
    generation and size, local size and mtime) first; when that differs (a touched or copied file),
    the full checksum, if the record holds one. A record that says neither is not trusted."""
    if record.get("input_identity") == identity:
        return True
    if not record.get("input_checksum"):
        return False
    count("input_checksums")
    return storage.checksum(path) == record["input_checksum"]
