"""A run report to look at: `python -m pipelines.report OUTPUT [--out FILE]`.

One self-contained HTML file (figures inline as SVG, no script, nothing fetched) from an output
tree's records, run summaries and failure lists: the loudness of each stem across the catalog, vocal
presence, audio hours per run, failures by stage and the slowest tracks. Written to
`{output}/_manifest/report.html` unless `--out` says otherwise.
"""

import argparse
import html
import io
import json
import sys

from pipelines.manifest import MANIFEST
from pipelines.records import RECORD_NAME
from pipelines.summary import FAILED, RUNS
from umx_core import storage
from umx_core.errors import UMXError

REPORT = "report.html"
SLOWEST = 10


def gather(output):
    """`(records, summaries, failures)` under `output`: the readable records (each with its folder),
    the run summaries and every failure line; what cannot be read is left out."""
    records, summaries, failures = [], [], []
    root = output.rstrip("/")
    for path in sorted(storage.list_files(output)):
        relative = path[len(root) + 1:]
        try:
            if relative.startswith(RUNS + "/") and relative.endswith(".json"):
                summaries.append(json.loads(storage.read_bytes(path)))
            elif relative.startswith(FAILED + "/") and relative.endswith(".jsonl"):
                failures += [json.loads(line) for line in storage.read_bytes(path).decode().splitlines() if line]
            elif relative.endswith("/" + RECORD_NAME) and not relative.startswith(MANIFEST + "/"):
                record = json.loads(storage.read_bytes(path))
                if isinstance(record, dict) and isinstance(record.get("stems"), dict):
                    records.append(record)
        except (UMXError, ValueError, OSError):
            continue
    return records, [s for s in summaries if isinstance(s, dict)], [f for f in failures if isinstance(f, dict)]


def _svg(figure):
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def figures(records, summaries, failures):
    """`[(title, svg)]` of the report's plots (a plot without data says so instead)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    loudness = {}
    for record in records:
        for stem, stats in ((record.get("analytics") or {}).get("stems") or {}).items():
            if stats.get("loudness_lufs") is not None:
                loudness.setdefault(stem, []).append(stats["loudness_lufs"])
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if loudness:
        ax.boxplot(list(loudness.values()), tick_labels=list(loudness))
    ax.set_ylabel("integrated loudness (LUFS)")
    ax.set_title(f"Loudness per stem ({len(records)} tracks)")
    out.append(("Loudness per stem", _svg(fig)))

    shares = [sum(b - a for a, b in (record["analytics"].get("vocal_segments") or [])) /
              max(record.get("duration_seconds") or 0, 1e-9)
              for record in records if (record.get("analytics") or {}).get("instrumental") is not None]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(shares, bins=[i / 10 for i in range(11)], color="C1")
    ax.set_xlabel("share of the track inside vocal segments")
    ax.set_ylabel("tracks")
    instrumental = sum(share == 0 for share in shares)
    ax.set_title(f"Vocal presence ({instrumental} of {len(shares)} tracks instrumental)")
    out.append(("Vocal presence", _svg(fig)))

    runs = sorted(summaries, key=lambda s: str(s.get("run")))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar([str(s.get("run")) for s in runs], [s.get("audio_hours", 0.0) for s in runs], color="C2")
    ax.set_ylabel("audio hours separated")
    ax.set_title(f"Audio hours per run ({sum(s.get('audio_hours', 0.0) for s in runs):.2f} h in all)")
    ax.tick_params(axis="x", labelrotation=30)
    out.append(("Audio hours per run", _svg(fig)))

    stages = {}
    for failure in failures:
        stages[failure.get("stage", "?")] = stages.get(failure.get("stage", "?"), 0) + 1
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(list(stages), list(stages.values()), color="C3")
    ax.set_ylabel("failures")
    ax.set_title(f"Failures by stage ({len(failures)} in all runs)")
    out.append(("Failures by stage", _svg(fig)))
    return out


def slowest(records, count=SLOWEST):
    """The `count` tracks with the lowest real-time factor: `[(track, seconds, duration, factor)]`."""
    rows = [(r["input"], r["separation_seconds"], r.get("duration_seconds") or 0.0)
            for r in records if r.get("separation_seconds")]
    rows = [(track, seconds, duration, duration / seconds) for track, seconds, duration in rows]
    return sorted(rows, key=lambda row: row[3])[:count]


def render(output, records, summaries, failures):
    """The report's HTML text."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Catalog report: {html.escape(output)}</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:60em} figure{margin:1em 0} "
             "table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:2px 8px;text-align:right} "
             "td:first-child{text-align:left}</style></head><body>",
             f"<h1>Catalog report</h1><p>{html.escape(output)}: {len(records)} complete tracks, "
             f"{len(summaries)} runs, {len(failures)} failures.</p>"]
    for title, svg in figures(records, summaries, failures):
        parts.append(f"<figure class='plot'><figcaption>{html.escape(title)}</figcaption>{svg}</figure>")
    parts.append("<h2>Slowest tracks</h2><table id='slowest'><tr><th>track</th><th>seconds</th><th>audio seconds</th>"
                 "<th>x real time</th></tr>")
    for track, seconds, duration, factor in slowest(records):
        parts.append(f"<tr><td>{html.escape(track)}</td><td>{seconds:.1f}</td><td>{duration:.1f}</td>"
                     f"<td>{factor:.1f}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def main(argv=None):
    """Command line of `python -m pipelines.report`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="an output folder of the catalog job, local or gs://")
    parser.add_argument("--out", help=f"where to write the report (default: OUTPUT/{MANIFEST}/{REPORT})")
    args = parser.parse_args(argv)
    try:
        records, summaries, failures = gather(args.output)
        target = args.out or storage.join(args.output, MANIFEST, REPORT)
        storage.write_bytes(target, render(args.output, records, summaries, failures).encode())
    except UMXError as exc:
        print(f"report: error: {exc}", file=sys.stderr)
        return 2
    print(f"{target}: {len(records)} tracks, {len(summaries)} runs, {len(failures)} failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
