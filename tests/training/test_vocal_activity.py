"""How the vocal figures are scored: frame F1, the instrumental flag, and the second criterion (the
vocals stem's audible share) with its threshold chosen on a split."""

import json

import numpy as np

from training import vocal_activity


def described(segments, share):
    """What `describe` gives, reduced to what the scoring reads."""
    return {"vocal_segments": segments, "instrumental": not segments, "stems": {"vocals": {"audible_share": share}}}


def test_frame_f1_and_the_flags_against_counts_made_by_hand():
    pairs = [
        (described([[0.0, 2.0]], 0.5), described([[1.0, 3.0]], 0.4), 80),  # 10 frames right, 10 missed, 10 extra
        (described([], 0.0), described([[5.0, 6.0]], 0.05), 80),  # an instrumental with 10 extra frames
        (described([], 0.0), described([], 0.3), 80),
    ]
    figures = vocal_activity.score(pairs, share_below=0.1)
    assert figures["frame_f1"] == round(2 * 10 / (2 * 10 + 20 + 10), 4)
    assert figures["instrumental_accuracy"] == round(2 / 3, 4)  # the second song's flag is wrong
    assert figures["instrumental_accuracy_by_share"] == round(2 / 3, 4)  # the third song's share is too high
    assert figures["songs"] == 3 and figures["instrumental_songs"] == 2


def test_the_chosen_threshold_separates_what_can_be_separated():
    rng = np.random.default_rng(0)
    vocal = [(described([[0, 1]], 0.0), described([[0, 1]], s), 20) for s in rng.uniform(0.3, 0.9, 12)]
    instrumental = [(described([], 0.0), described([], s), 20) for s in rng.uniform(0.0, 0.2, 12)]
    threshold = vocal_activity.choose_share(vocal + instrumental)
    assert 0.2 <= threshold <= 0.3
    assert vocal_activity.score(vocal + instrumental, threshold)["instrumental_accuracy_by_share"] == 1.0


def test_the_command_on_rendered_songs(tmp_path, capsys):
    from training.synthesize import synthesize

    root = tmp_path / "data"
    synthesize(str(root), tracks=2, targets=("vocals", "accompaniment"), duration=3.0, rate=44100,
               valid_fraction=0.5, seed=1)
    out = tmp_path / "figures.json"
    assert vocal_activity.main(["--model", "demo-2stems", "--root", str(root), "--split", "valid",
                                "--without-vocals", "--choose", "--share-below", "0.2", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["with_vocals"]["songs"] == figures["without_vocals"]["songs"] == 1
    assert figures["without_vocals"]["instrumental_songs"] == 1 and "instrumental_accuracy_by_share" in figures["with_vocals"]
    assert figures["share_threshold"] is None or 0 <= figures["share_threshold"] <= 1
