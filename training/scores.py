"""Scores of an evaluation (`training.evaluate`'s results) summed up: medians over tracks, the songs
behind each median, the printed table and the SDR box plot."""

import numpy as np

METRICS = ("SDR", "SIR", "SAR", "ISR")


def summarize(results):
    """Median over tracks: `{method: {target: {metric: value}}}`."""
    summary = {}
    for method, tracks in results.items():
        targets = next(iter(tracks.values())).keys()
        summary[method] = {t: {m: _median([tracks[k][t][m] for k in tracks]) for m in METRICS} for t in targets}
    return summary


def scored(results):
    """Songs behind each median: `{method: {target: tracks with an SDR}}`. museval scores a one-second
    window only where no source is silent, so a song whose parts drop out in every window has none."""
    return {method: {t: sum(tracks[k][t]["SDR"] is not None for k in tracks)
                     for t in next(iter(tracks.values()))} for method, tracks in results.items() if tracks}


def fmt(value):
    """A score as the tables print it (n/a for None)."""
    return "n/a" if value is None else f"{value:.2f}"


def _median(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def plot(results, path):
    """Box plot of per-track SDR per target, one box per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(results)
    targets = list(next(iter(results[methods[0]].values())))
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(targets) * len(methods) / 2, 4))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        data = [[results[method][k][t]["SDR"] for k in results[method] if results[method][k][t]["SDR"] is not None]
                for t in targets]
        positions = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(targets))]
        box = ax.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True)
        for patch in box["boxes"]:
            patch.set_facecolor(f"C{i}")
        ax.plot([], [], color=f"C{i}", linewidth=8, label=method)
    ax.set_xticks(range(len(targets)), targets)
    ax.set_ylabel("SDR (dB), median over 1 s windows, per track")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def format_table(summary, counts=None):
    """The medians as a printable table, one line per method and target (and the songs behind each,
    `counts` as `scored` gives them)."""
    lines = []
    for method, targets in summary.items():
        lines.append(f"{method}:")
        for target, scores in targets.items():
            songs = f"  songs {counts[method][target]}" if counts else ""
            lines.append(f"  {target:<14}" + "  ".join(f"{m} {fmt(scores[m]):>6}" for m in METRICS) + songs)
    return "\n".join(lines)
