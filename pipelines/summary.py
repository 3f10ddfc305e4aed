"""The catalog job's last stages: every track's status record summed up (`Summarize`), then the
run summary `{output}/_runs/{run}.json` and the failure list `{output}/_failed/{run}.jsonl`
(`WriteSummary`), which is itself an input list for a retry."""

import json
import logging
import time

import apache_beam as beam

from pipelines import manifest
from pipelines.stages import count
from umx_core import storage
from umx_core.errors import UMXError, printable
from umx_core.version import code_version

FAILED, RUNS = "_failed", "_runs"


class Summarize(beam.CombineFn):
    """Counts and audio seconds over every status record."""

    KEYS = ("found", "skipped", "separated", "failed", "downmixed", "unmatched", "audio_seconds")

    def create_accumulator(self):
        return {**{key: 0 for key in self.KEYS}, "audio_seconds": 0.0, "failed_records": []}

    def add_input(self, acc, record):
        status = record.get("status", "failed")
        acc[status] += 1
        if status != "failed" or record.get("stage") != "match":
            acc["found"] += 1
        if status == "separated":
            acc["audio_seconds"] += record.get("seconds", 0.0)
            acc["downmixed"] += bool(record.get("downmixed"))
        if status == "failed":
            acc["unmatched"] += record.get("stage") == "match"
            acc["failed_records"].append({k: record[k] for k in ("path", "stage", "error", "output", "kind")
                                          if record.get(k)})
        return acc

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for acc in accs:
            for key in self.KEYS:
                out[key] += acc[key]
            out["failed_records"].extend(acc["failed_records"])
        return out

    def extract_output(self, acc):
        return acc


class WriteSummary(beam.DoFn):
    """The run summary `{output}/_runs/{run}.json` and the failure list `{output}/_failed/{run}.jsonl`."""

    def __init__(self, output, run_id, started, params):
        self.output, self.run_id, self.started, self.params = output, run_id, started, params

    def process(self, summary):
        failed = sorted(summary.pop("failed_records"), key=lambda r: r["path"] or "")
        errors = []
        if failed:
            lines = "".join(json.dumps(r) + "\n" for r in failed)
            errors += _store(storage.join(self.output, FAILED, f"{self.run_id}.jsonl"), lines.encode())
        summary.update(run=self.run_id, audio_hours=summary.pop("audio_seconds") / 3600.0,
                       wall_seconds=time.time() - self.started, parameters=self.params, code_version=code_version(),
                       unmatched_inputs=[r["path"] for r in failed if r["stage"] == "match"], errors=errors)
        if self.params.get("analytics", True):  # beside the run's manifest: the schema for `bq load`
            errors += _store(storage.join(self.output, manifest.MANIFEST, manifest.SCHEMA_FILE),
                             json.dumps(manifest.bigquery_schema()["fields"], indent=2).encode())
        errors += _store(storage.join(self.output, RUNS, f"{self.run_id}.json"), json.dumps(summary, indent=2).encode())
        yield summary


def _store(path, data):
    """Write one of the run's own files; `[error]` if that fails even after the storage layer's retries.
    Logged and returned, never raised: every track's stems and record are in place by now, and a
    failing step here would make Beam retry it, or fail a job whose work is done."""
    try:
        storage.write_bytes(path, data)
        return []
    except (UMXError, OSError) as exc:
        error = printable(f"{path}: the run's own file could not be written ({exc}); the tracks' stems and records "
                          f"are in place")
        logging.getLogger(__name__).error(error)
        count("summary_errors")
        return [error]
