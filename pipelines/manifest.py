"""The catalog as a table: one row per track and stem, from the tracks' records (`separation.json`).

`SCHEMA` is declared once here; the Parquet files (`pyarrow_schema`), the schema file for
`bq load` (`bigquery_schema`) and the job's BigQuery sink all take it from here. The job writes
the rows of the tracks it separates to `{output}/_manifest/{run}-*.parquet` (and to BigQuery with
`--manifest_table`); `python -m pipelines.manifest OUTPUT` rebuilds the manifest of a whole output
tree from its records alone (no audio decoded), for tracks separated by earlier runs, and reports
and skips records it cannot read.

Query example (BigQuery, or any Parquet reader): the instrumental tracks,

    SELECT track FROM manifest WHERE stem = 'vocals' AND instrumental
"""

import datetime
import json
import sys

from pipelines.records import RECORD_NAME
from umx_core import storage
from umx_core.errors import UMXError, printable

MANIFEST = "_manifest"
SCHEMA_FILE = "schema.json"
# (name, BigQuery type, mode, description)
SCHEMA = [
    ("track", "STRING", "REQUIRED", "the input's path"),
    ("output", "STRING", "REQUIRED", "the track's output folder"),
    ("input_identity", "STRING", "NULLABLE", "the input's identity when separated (JSON: gs:// generation and size, "
                                             "or local size and mtime)"),
    ("input_checksum", "STRING", "NULLABLE", "the input's checksum"),
    ("duration_seconds", "FLOAT", "NULLABLE", "seconds of audio separated"),
    ("sample_rate", "INTEGER", "NULLABLE", "the stems' sample rate"),
    ("channels", "INTEGER", "NULLABLE", "the stems' channels"),
    ("stem", "STRING", "REQUIRED", "the stem's name"),
    ("stem_uri", "STRING", "REQUIRED", "where the stem is"),
    ("stem_checksum", "STRING", "NULLABLE", "the stem's checksum"),
    ("loudness_lufs", "FLOAT", "NULLABLE", "integrated loudness (BS.1770-4; null: silent)"),
    ("sample_peak_dbfs", "FLOAT", "NULLABLE", "sample peak"),
    ("true_peak_dbtp", "FLOAT", "NULLABLE", "true peak (BS.1770-4 Annex 2)"),
    ("audible_share", "FLOAT", "NULLABLE", "share of the track's 400 ms blocks where the stem is audible"),
    ("first_audible_seconds", "FLOAT", "NULLABLE", "start of the first audible block"),
    ("last_audible_seconds", "FLOAT", "NULLABLE", "end of the last audible block"),
    ("energy_share", "FLOAT", "NULLABLE", "the stem's energy over the mixture's"),
    ("mixture_loudness_lufs", "FLOAT", "NULLABLE", "the mixture's integrated loudness"),
    ("mixture_true_peak_dbtp", "FLOAT", "NULLABLE", "the mixture's true peak"),
    ("instrumental", "BOOLEAN", "NULLABLE", "no vocal segment (null: the model has no vocals stem)"),
    ("vocal_seconds", "FLOAT", "NULLABLE", "seconds inside the vocal segments"),
    ("vocal_segments", "STRING", "NULLABLE", "JSON [[start, end], ...] seconds of the vocal segments"),
    ("model", "STRING", "NULLABLE", "the model's name or path"),
    ("model_digest", "STRING", "NULLABLE", "sha256 of the model's weights"),
    ("parameters", "STRING", "NULLABLE", "JSON: the settings that made the stems"),
    ("code_version", "STRING", "NULLABLE", "the code that separated the track"),
    ("run_id", "STRING", "NULLABLE", "the run that separated the track"),
    ("separated_at", "TIMESTAMP", "NULLABLE", "when the track was separated"),
]
STEM_FIELDS = ("loudness_lufs", "sample_peak_dbfs", "true_peak_dbtp", "audible_share", "first_audible_seconds",
               "last_audible_seconds", "energy_share")


def bigquery_schema():
    """The schema as `bq load --schema` and Beam's BigQuery sink take it: `{"fields": [...]}`."""
    return {"fields": [{"name": n, "type": t, "mode": m, "description": d} for n, t, m, d in SCHEMA]}


def pyarrow_schema():
    """The schema as a `pyarrow.Schema` (the Parquet files')."""
    import pyarrow as pa

    types = {"STRING": pa.string(), "FLOAT": pa.float64(), "INTEGER": pa.int64(), "BOOLEAN": pa.bool_(),
             "TIMESTAMP": pa.timestamp("us", tz="UTC")}
    return pa.schema([pa.field(n, types[t], nullable=m != "REQUIRED") for n, t, m, _ in SCHEMA])


def _timestamp(text):
    return datetime.datetime.fromisoformat(text) if text else None


def rows(record, folder):
    """The manifest rows of one record (`separation.json`), one per stem.

    Raises:
        UMXError naming the folder when the record lacks what a row needs.
    """
    try:
        analytics = record.get("analytics") or {}
        stem_stats = analytics.get("stems", {})
        mixture = analytics.get("mixture", {})
        segments = analytics.get("vocal_segments")
        common = {
            "track": record["input"], "output": folder,
            "input_identity": None if record.get("input_identity") is None else json.dumps(
                record["input_identity"], sort_keys=True),
            "input_checksum": record.get("input_checksum"), "duration_seconds": record.get("duration_seconds"),
            "sample_rate": record.get("sample_rate"), "channels": record.get("channels"),
            "mixture_loudness_lufs": mixture.get("loudness_lufs"), "mixture_true_peak_dbtp": mixture.get("true_peak_dbtp"),
            "instrumental": analytics.get("instrumental"),
            "vocal_seconds": None if segments is None else round(sum(b - a for a, b in segments), 2),
            "vocal_segments": None if segments is None else json.dumps(segments),
            "model": record.get("model"), "model_digest": record.get("model_digest"),
            "parameters": json.dumps(record.get("parameters"), sort_keys=True), "code_version": record.get("code_version"),
            "run_id": record.get("run_id"), "separated_at": _timestamp(record.get("separated_at")),
        }
        checksums = record.get("stem_checksums") or {}
        out = [{**common, "stem": stem, "stem_uri": uri, "stem_checksum": checksums.get(stem),
                **{key: stem_stats.get(stem, {}).get(key) for key in STEM_FIELDS}}
               for stem, uri in sorted(record["stems"].items())]
        # Parquet and BigQuery hold UTF-8 only: a name with surrogates (not UTF-8 on disk) raises here
        "".join(value for row in out for value in row.values() if isinstance(value, str)).encode("utf-8")
        return out
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise UMXError(f"{folder}: a malformed record ({type(exc).__name__}: {exc})") from None


def write_parquet(path, table_rows):
    """Write rows as one Parquet file, local or gs:// (whole or not at all)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(table_rows, schema=pyarrow_schema()), buffer)
    storage.write_bytes(path, buffer.getvalue())


def write_schema(output):
    """`{output}/_manifest/schema.json`, for `bq load --schema`."""
    storage.write_bytes(storage.join(output, MANIFEST, SCHEMA_FILE), json.dumps(bigquery_schema()["fields"],
                                                                               indent=2).encode())


def rebuild(output, log=print):
    """The manifest of every track under `output`, from the records alone: writes
    `{output}/_manifest/rebuilt-{UTC time}.parquet` and the schema file; returns `(path, rows,
    problems)`, each problem a line naming a record that could not be read (skipped)."""
    table, problems = [], []
    for path in sorted(storage.list_files(output)):
        relative = path[len(output.rstrip("/")) + 1:]
        if not relative.endswith("/" + RECORD_NAME) or relative.startswith(("_runs/", "_failed/", MANIFEST + "/")):
            continue
        folder = path[: -len(RECORD_NAME) - 1]
        try:
            record = json.loads(storage.read_bytes(path))
            if not isinstance(record, dict):
                raise UMXError(f"{folder}: a malformed record (not a JSON object)")
            table.extend(rows(record, folder))
        except (UMXError, ValueError, OSError) as exc:
            problems.append(str(exc) if isinstance(exc, UMXError) else f"{path}: unreadable ({exc})")
            log(f"manifest: skipped: {problems[-1]}")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    target = storage.join(output, MANIFEST, f"rebuilt-{stamp}.parquet")
    write_parquet(target, table)
    write_schema(output)
    return target, len(table), problems


def main(argv=None):
    """`python -m pipelines.manifest OUTPUT`: rebuild the manifest of an output tree; exit 1 when a
    record was skipped."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m pipelines.manifest OUTPUT   (an output folder of the catalog job, local or gs://)",
              file=sys.stderr)
        return 2
    try:
        target, count, problems = rebuild(argv[0], log=lambda line: print(printable(line), file=sys.stderr))
    except UMXError as exc:
        print(f"manifest: error: {printable(exc)}", file=sys.stderr)
        return 2
    print(f"{target}: {count} rows; {len(problems)} record(s) skipped")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
