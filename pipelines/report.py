"""A run report to look at: `python -m pipelines.report OUTPUT [--out FILE]`.

One self-contained HTML file (figures inline as SVG, no script, nothing fetched) from an output
tree's records, run summaries and failure lists: the loudness of each stem across the catalog, vocal
presence, audio hours per run, failures by stage, the slowest tracks, the failed ones, and every file
or failure line it could not read. Written to `{output}/_manifest/report.html` unless `--out` says
otherwise. Every name is text, never markup: escaped for HTML, its unprintable characters shown as
escapes (`umx_core.errors.printable`), and kept out of matplotlib's mathtext.
"""

import argparse
import html
import io
import json
import math
import sys

from pipelines.manifest import MANIFEST
from pipelines.records import RECORD_NAME
from pipelines.summary import FAILED, RUNS
from umx_core import storage
from umx_core.errors import UMXError, printable

REPORT = "report.html"
SLOWEST = 10
FAILURES_SHOWN = 100  # the rest are counted; the failure lists hold them all


def gather(output):
    """`(records, summaries, failures, skipped)` under `output`: the records (with stems), the run
    summaries and the failure lines that are JSON objects, and one line naming each file, or
    failure line, left out and why. A failure list's other lines are read all the same."""
    records, summaries, failures, skipped = [], [], [], []
    root = output.rstrip("/")
    for path in sorted(storage.list_files(output)):
        relative = path[len(root) + 1:]
        try:
            if relative.startswith(RUNS + "/") and relative.endswith(".json"):
                summaries.append(_parse(storage.read_bytes(path)))
            elif relative.startswith(FAILED + "/") and relative.endswith(".jsonl"):
                for number, line in enumerate(storage.read_bytes(path).split(b"\n"), 1):
                    if not line.strip():
                        continue
                    try:
                        failures.append(_parse(line))
                    except ValueError as exc:
                        skipped.append(f"{path}: line {number} skipped: {exc}")
            elif relative.endswith("/" + RECORD_NAME) and not relative.startswith(MANIFEST + "/"):
                record = _parse(storage.read_bytes(path))
                if not isinstance(record.get("stems"), dict):
                    raise ValueError("a record without stems")
                records.append(record)
        except (UMXError, ValueError, OSError) as exc:
            skipped.append(f"{path}: skipped: {exc}")
    return records, summaries, failures, skipped


def _parse(data):
    """The JSON object in `data` (bytes); ValueError saying why there is none."""
    try:
        value = json.loads(data)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _mapping(value):
    return value if isinstance(value, dict) else {}


def _number(value):
    """`value` as a float if it is a finite number, else None (a hand-edited file may hold anything)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _text(value):
    """A field as the report shows it: printable text (None: empty; not a string: its JSON)."""
    return printable(value if isinstance(value, str) else "" if value is None else json.dumps(value))


def _label(value):
    """A figure's label: printable, and its `$` literal (matplotlib would read `$...$` as mathtext)."""
    return _text(value).replace("$", r"\$")


def _svg(figure):
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def figures(records, summaries, failures):
    """`[(caption, svg or None, words)]` of the report's plots: a plot without data is None, and its
    words say what there is instead. The caption is each plot's one heading (the axes have none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def plot(draw, xlabel=None, ylabel=None):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        draw(ax)
        ax.set_xlabel(xlabel or "")
        ax.set_ylabel(ylabel or "")
        return _svg(fig)

    out = []
    loudness = {}
    for record in records:
        for stem, stats in _mapping(_mapping(record.get("analytics")).get("stems")).items():
            if _number(_mapping(stats).get("loudness_lufs")) is not None:
                loudness.setdefault(_label(stem), []).append(_number(stats["loudness_lufs"]))
    caption = f"Loudness per stem ({len(records)} tracks)"
    if loudness:
        out.append((caption, plot(lambda ax: ax.boxplot(list(loudness.values()), tick_labels=list(loudness)),
                                  ylabel="integrated loudness (LUFS)"), None))
    else:
        out.append((caption, None, "No stem has a loudness: no complete track was measured."))

    shares = [share for share in map(_vocal_share, records) if share is not None]
    instrumental = sum(share == 0 for share in shares)
    caption = f"Vocal presence ({instrumental} of {len(shares)} tracks instrumental)"
    if shares:
        out.append((caption, plot(lambda ax: ax.hist(shares, bins=[i / 10 for i in range(11)], color="C1"),
                                  "share of the track inside vocal segments", "tracks"), None))
    else:
        out.append((caption, None, "No track has vocal segments measured (no vocals stem, or no analytics)."))

    runs = sorted(summaries, key=lambda s: _text(s.get("run")))
    hours = [_number(s.get("audio_hours")) or 0.0 for s in runs]
    caption = f"Audio hours per run ({sum(hours):.2f} h in all)"
    if runs:
        def bars(ax):
            ax.bar([_label(s.get("run")) for s in runs], hours, color="C2")
            ax.tick_params(axis="x", labelrotation=30)

        out.append((caption, plot(bars, ylabel="audio hours separated"), None))
    else:
        out.append((caption, None, "No run has finished yet."))

    stages = {}
    for failure in failures:
        stage = _label(failure.get("stage", "?"))
        stages[stage] = stages.get(stage, 0) + 1
    caption = f"Failures by stage ({len(failures)} in all runs)"
    if stages:
        out.append((caption, plot(lambda ax: ax.bar(list(stages), list(stages.values()), color="C3"),
                                  ylabel="failures"), None))
    else:
        out.append((caption, None, "No failures in any run."))
    return out


def _vocal_share(record):
    """The share of a track inside its vocal segments; None without them (or unreadable)."""
    analytics = _mapping(record.get("analytics"))
    if analytics.get("instrumental") is None:
        return None
    try:
        vocal = sum(float(end) - float(start) for start, end in analytics.get("vocal_segments") or [])
    except (TypeError, ValueError):
        return None
    return vocal / max(_number(record.get("duration_seconds")) or 0.0, 1e-9)


def slowest(records, count=SLOWEST):
    """The `count` tracks with the lowest real-time factor: `[(track, seconds, duration, factor)]`."""
    rows = [(_text(r.get("input")), _number(r.get("separation_seconds")), _number(r.get("duration_seconds")) or 0.0)
            for r in records]
    rows = [(track, seconds, duration, duration / seconds) for track, seconds, duration in rows if seconds]
    return sorted(rows, key=lambda row: row[3])[:count]


def _cells(*values):
    return "<tr>" + "".join(f"<td>{html.escape(value)}</td>" for value in values) + "</tr>"


def render(output, records, summaries, failures, skipped=()):
    """The report's HTML text."""
    shown = html.escape(printable(output))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Catalog report: {shown}</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:60em} figure{margin:1em 0} "
             "table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:2px 8px;text-align:right} "
             "td:first-child,#failures td{text-align:left}</style></head><body>",
             f"<h1>Catalog report</h1><p>{shown}: {len(records)} complete tracks, "
             f"{len(summaries)} runs, {len(failures)} failures.</p>"]
    for caption, svg, words in figures(records, summaries, failures):
        body = svg if svg is not None else f"<p class='empty'>{html.escape(words)}</p>"
        parts.append(f"<figure class='plot'><figcaption>{html.escape(caption)}</figcaption>{body}</figure>")
    rows = slowest(records)
    parts.append("<h2>Slowest tracks</h2>")
    if rows:
        parts.append("<table id='slowest'><tr><th>track</th><th>seconds</th><th>audio seconds</th>"
                     "<th>x real time</th></tr>")
        parts += [_cells(track, f"{seconds:.1f}", f"{duration:.1f}", f"{factor:.1f}")
                  for track, seconds, duration, factor in rows]
        parts.append("</table>")
    else:
        parts.append("<p id='slowest'>No complete track yet.</p>")
    parts.append("<h2>Failures</h2>")
    if failures:
        parts.append("<table id='failures'><tr><th>input</th><th>stage</th><th>error</th></tr>")
        parts += [_cells(*(_text(failure.get(key)) for key in ("path", "stage", "error")))
                  for failure in failures[:FAILURES_SHOWN]]
        parts.append("</table>")
    else:
        parts.append("<p id='failures'>No failures.</p>")
    if len(failures) > FAILURES_SHOWN:
        parts.append(f"<p>and {len(failures) - FAILURES_SHOWN} more, in {FAILED}/.</p>")
    if skipped:
        parts.append("<h2>Not read</h2><ul id='skipped'>")
        parts += [f"<li>{html.escape(printable(line))}</li>" for line in skipped]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def main(argv=None):
    """Command line of `python -m pipelines.report`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="an output folder of the catalog job, local or gs://")
    parser.add_argument("--out", help=f"where to write the report (default: OUTPUT/{MANIFEST}/{REPORT})")
    args = parser.parse_args(argv)
    try:
        records, summaries, failures, skipped = gather(args.output)
        if not (records or summaries or failures or skipped):
            raise UMXError(f"{args.output}: no record, run summary or failure list of the catalog job there "
                           "(a mistyped path, or a job that has not finished a run)")
        target = args.out or storage.join(args.output, MANIFEST, REPORT)
        storage.write_bytes(target, render(args.output, records, summaries, failures, skipped).encode())
    except UMXError as exc:
        print(f"report: error: {printable(exc)}", file=sys.stderr)
        return 2
    for line in skipped:
        print(f"report: {printable(line)}", file=sys.stderr)
    print(printable(f"{target}: {len(records)} tracks, {len(summaries)} runs, {len(failures)} failures, "
                    f"{len(skipped)} files or lines not read"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
