"""The demo-model table of docs/research.md from the shipped models' scores: `python -m training.demo_table FILE MODEL...`.

Each model folder holds `evaluation.json` (the in-distribution test split) and
`evaluation-ood.json` (the out-of-distribution one), as `make demo-models` writes them, and beside
each the model's scores where each part sounds (`training.evaluate --audible-db`,
`evaluation-audible.json` and `evaluation-ood-audible.json`; `n/a` without them). The table
replaces what stands between the `<!-- demo-table -->` and `<!-- /demo-table -->` lines.
"""

import json
import os
import sys

from umx_core.errors import UMXError

START, END = "<!-- demo-table -->", "<!-- /demo-table -->"
COLUMNS = ("model", "mixture", "irm")


def _evaluation(folder, name, required=True):
    path = os.path.join(folder, name)
    if not required and not os.path.exists(path):
        return {"median": {"model": {}}}
    with open(path) as f:
        return json.load(f)


def _songs(evaluation, target):
    """`N of M`: the songs behind the model's median for `target` (museval scores no window where a
    source is silent), of the split's songs; `?` for an evaluation written before these were recorded."""
    scored = evaluation.get("scored", {}).get("model", {}).get(target)
    return "?" if scored is None or "songs" not in evaluation else f"{scored} of {evaluation['songs']}"


def _cell(value, bold=False):
    if value is None:
        return "n/a"
    return f"**{value:.1f}**" if bold else f"{value:.1f}"


def table(folders):
    """Markdown rows: per model and target, median SDR in and out of distribution with both baselines
    and the songs behind the model's medians."""
    head = ("| model | target | SDR test | audible | songs | mixture | IRM | SDR out-of-distribution | audible | songs "
            "| mixture | IRM |\n" + "| --- " * 12 + "|")
    rows = [head]
    for folder in folders:
        name = os.path.basename(os.path.normpath(folder))
        with open(os.path.join(folder, "separator.json")) as f:
            version = json.load(f).get("code_version", "?")
        splits = [_evaluation(folder, "evaluation.json"), _evaluation(folder, "evaluation-ood.json")]
        audible = [_evaluation(folder, n, required=False) for n in ("evaluation-audible.json",
                                                                     "evaluation-ood-audible.json")]
        targets = list(splits[0]["median"]["model"])
        means = [[] for _ in range(8)]
        for target in targets:
            values = [v for split, more in zip(splits, audible)
                      for v in [split["median"]["model"][target]["SDR"],
                                more["median"]["model"].get(target, {}).get("SDR")]
                      + [split["median"][c][target]["SDR"] for c in COLUMNS[1:]]]
            for column, v in zip(means, values):
                column.append(v)
            cells = [_cell(v, i % 4 == 0) for i, v in enumerate(values)]
            cells = cells[:2] + [_songs(splits[0], target)] + cells[2:6] + [_songs(splits[1], target)] + cells[6:]
            rows.append(f"| `{name}` | {target} | " + " | ".join(cells) + " |")
        if len(targets) > 2:
            # a target without a score leaves the mean unknown
            cells = [_cell(None if None in c else sum(c) / len(c), i % 4 == 0) for i, c in enumerate(means)]
            cells = cells[:2] + [""] + cells[2:6] + [""] + cells[6:]
            rows.append(f"| `{name}` | *mean* | " + " | ".join(cells) + " |")
        rows.append(f"| `{name}` | *code version* | `{version}` |" + " |" * 9)
    return "\n".join(rows)


def update(readme, folders):
    """Rewrite the table between the markers of `readme` in place."""
    with open(readme) as f:
        text = f.read()
    if START not in text or END not in text:
        raise UMXError(f"{readme}: no {START} ... {END} block to fill")
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    with open(readme, "w") as f:
        f.write(f"{before}{START}\n{table(folders)}\n{END}{after}")


def main(argv=None):
    """Command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print("usage: python -m training.demo_table docs/research.md MODEL_FOLDER...", file=sys.stderr)
        return 2
    try:
        update(argv[0], argv[1:])
    except (UMXError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
