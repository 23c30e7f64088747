"""Metrics on hand-checked examples; overlapping windows averaged into one prediction per note / piece."""

from __future__ import annotations

import json

import numpy as np
import pytest

from midibert import evaluate
from midibert.tokenize.labels import IGNORE
from midibert.tokenize.windows import aggregate_notes, aggregate_pieces, note_labels

X = IGNORE


def test_metrics_by_hand():
    m = evaluate.metrics([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c", "d"])
    # a: 1/1 right; b: 1 of 2 found, precision 1; c: found, but one b was also called c; d: never seen
    assert m["n"] == 4 and m["accuracy"] == 0.75
    assert m["per_class"]["b"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_class"]["c"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert m["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3 + 0) / 4)
    assert m["confusion"] == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_emotion_quadrants_are_scored_on_each_axis():
    names = ["Q1", "Q2", "Q3", "Q4"]  # Q1 high arousal, positive valence; then anticlockwise
    # Q1 -> Q2 keeps arousal, loses valence; Q3 -> Q1 loses both; Q4 -> Q3 keeps arousal only
    m = evaluate.metrics([0, 0, 2, 3], [0, 1, 0, 2], names)
    assert m["accuracy"] == 0.25 and m["axes"] == {"arousal": 0.75, "valence": 0.25}
    assert "axes" not in evaluate.metrics([0, 1], [0, 1], ["a", "b"])


def test_metrics_refuses_nothing():
    with pytest.raises(ValueError, match="no labelled"):
        evaluate.metrics([], [], ["a", "b"])


# Four windows of 4 tokens, 2 classes. Piece 5: windows 0 and 1 overlap on note 1. Piece 2: windows 2
# and 3 share note 1. The last tokens are padding (-1), whose probabilities must not count.
PROBS = np.array(
    [
        [[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.5, 0.5]],
        [[0.4, 0.6], [0.6, 0.4], [1.0, 0.0], [0.0, 1.0]],
        [[0.3, 0.7], [0.8, 0.2], [0.5, 0.5], [0.5, 0.5]],
        [[0.4, 0.6], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]],
    ]
)
NOTE_INDEX = np.array([[0, 0, 1, -1], [1, 2, 2, -1], [0, 1, -1, -1], [1, -1, -1, -1]])
PIECE = np.array([5, 5, 2, 2])
LABELS = np.array([[0, 0, 1, X], [1, X, 0, X], [1, 0, X, X], [0, X, X, X]])  # note 2 of piece 5 half labelled


def test_aggregate_notes_by_hand():
    pieces, notes, mean = aggregate_notes(PROBS, NOTE_INDEX, PIECE)
    assert list(zip(pieces.tolist(), notes.tolist())) == [(2, 0), (2, 1), (5, 0), (5, 1), (5, 2)]  # each once
    expected = [
        [0.3, 0.7],  # piece 2 note 0: one token
        [(0.8 + 0.4) / 2, (0.2 + 0.6) / 2],  # piece 2 note 1: one token in each window
        [(0.9 + 0.7) / 2, (0.1 + 0.3) / 2],  # piece 5 note 0: two tokens in one window
        [(0.2 + 0.4) / 2, (0.8 + 0.6) / 2],  # piece 5 note 1: one token in each window
        [(0.6 + 1.0) / 2, (0.4 + 0.0) / 2],
    ]  # piece 5 note 2: two tokens in window 1
    np.testing.assert_allclose(mean, expected)


def test_note_labels_follow_aggregate_order():
    assert note_labels(LABELS, NOTE_INDEX, PIECE).tolist() == [1, 0, 0, 1, 0]


def test_note_without_label_is_ignored():
    labels = np.where(NOTE_INDEX == 2, X, LABELS)
    assert note_labels(labels, NOTE_INDEX, PIECE).tolist() == [1, 0, 0, 1, X]
    assert evaluate.evaluate_token_task(PROBS, labels, NOTE_INDEX, PIECE, ["m", "a"])["note"]["n"] == 4


def test_token_task_levels():
    levels = evaluate.evaluate_token_task(PROBS, LABELS, NOTE_INDEX, PIECE, ["m", "a"])
    # 8 labelled tokens, only window 3's token is wrong; averaging with window 2 puts that note right
    assert levels["window"]["n"] == 8 and levels["window"]["accuracy"] == 7 / 8
    assert levels["note"]["n"] == 5 and levels["note"]["accuracy"] == 1.0


def test_aggregate_pieces_by_hand():
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6]])
    ids, mean = aggregate_pieces(probs, np.array([7, 3, 7, 3]))
    assert ids.tolist() == [3, 7]
    np.testing.assert_allclose(mean, [[0.45, 0.55], [0.55, 0.45]])


def test_sequence_task_levels():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.2, 0.8]])
    levels = evaluate.evaluate_sequence_task(probs, [0, 1, 0, 1], [7, 3, 7, 3], ["x", "y"])
    assert levels["window"]["accuracy"] == 0.5
    assert levels["piece"]["n"] == 2 and levels["piece"]["accuracy"] == 1.0  # piece 3 -> y, piece 7 -> x
    with pytest.raises(ValueError, match="different labels"):
        evaluate.evaluate_sequence_task(probs, [0, 1, 1, 1], [7, 3, 7, 3], ["x", "y"])


def test_write_results(tmp_path):
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.2, 0.8]])
    results = {
        "task": "style",
        "model": "bert",
        "representation": "cp",
        "dataset": "pianist8",
        "class_names": ["x", "y"],
        "seed": 0,
        "scale": {"layers": np.int64(2), "steps": 10},
        "levels": evaluate.evaluate_sequence_task(probs, [0, 1, 0, 1], [7, 3, 7, 3], ["x", "y"]),
    }
    evaluate.write_results(tmp_path / "run", results)
    run = tmp_path / "run"
    assert json.loads((run / "results.json").read_text()) == {**results, "scale": {"layers": 2, "steps": 10}}
    summary = (run / "results.md").read_text()
    assert "style: bert (cp) on pianist8" in summary and "| piece | 2 | 100.00% |" in summary
    for level in ("window", "piece"):
        assert (run / f"confusion_{level}.png").read_bytes()[:4] == b"\x89PNG"
        saved = json.loads((run / f"confusion_{level}.json").read_text())
        assert saved == {"class_names": ["x", "y"], "matrix": results["levels"][level]["confusion"]}
    assert not list(run.glob("*.tmp"))
