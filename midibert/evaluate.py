"""Scores for fine-tuned models and baselines: window-level metrics, and note / piece-level metrics
after averaging the probabilities of overlapping windows, written as JSON, markdown and plots.

Windows overlap, so a note (or a piece) is seen several times; each is predicted once, from the
mean of all the probabilities given to it, and so is counted once, as the paper evaluates.

Example::

    from midibert import evaluate
    levels = evaluate.evaluate_token_task(probs, labels, note_index, piece, ["melody", "bridge", "accompaniment"])
    evaluate.write_results("runs/melody", {"task": "melody", "model": "bert", "representation": "cp",
                                           "dataset": "pop909", "class_names": [...], "levels": levels,
                                           "scale": {"layers": 12, "steps": 1000}, "seed": 0})
"""

from __future__ import annotations

from midibert.errors import require_extra

require_extra("train")

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from midibert import viz
from midibert.fsutil import atomic_path, write_atomic
from midibert.tokenize.labels import IGNORE
from midibert.tokenize.windows import aggregate_notes, aggregate_pieces, note_labels

# Russell's quadrants as EMOPIA and VGMIDI name them: (high arousal, positive valence)
QUADRANTS = {"Q1": (True, True), "Q2": (True, False), "Q3": (False, False), "Q4": (False, True)}


def metrics(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows true);
    for emotion quadrants also "axes": accuracy on arousal and on valence alone, which tells a
    model that misses one axis from one that misses both."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if not len(y_true):
        raise ValueError("no labelled examples to score")
    labels = list(range(len(class_names)))  # fixed, so absent classes still get a row and a column
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean(f)),
        "per_class": {
            name: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(s[k])}
            for k, name in enumerate(class_names)
        },
        "confusion": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    } | ({"axes": _axes(y_true, y_pred, class_names)} if sorted(class_names) == sorted(QUADRANTS) else {})


def _axes(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict:
    table = np.array([QUADRANTS[name] for name in class_names])  # class id -> (arousal, valence)
    right = table[y_true] == table[y_pred]
    return {"arousal": float(right[:, 0].mean()), "valence": float(right[:, 1].mean())}


def evaluate_token_task(
    probs: np.ndarray, labels: np.ndarray, note_index: np.ndarray, piece: np.ndarray, class_names: Sequence[str]
) -> dict:
    """{"window": metrics over every labelled token, "note": metrics over notes after aggregation}."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    labelled = labels != IGNORE
    _, _, mean = aggregate_notes(probs, note_index, piece)
    truth = note_labels(labels, note_index, piece)
    known = truth != IGNORE
    return {
        "window": metrics(labels[labelled], probs.argmax(-1)[labelled], class_names),
        "note": metrics(truth[known], mean.argmax(-1)[known], class_names),
    }


def evaluate_sequence_task(
    probs: np.ndarray, labels: np.ndarray, piece: np.ndarray, class_names: Sequence[str]
) -> dict:
    """{"window": metrics per window, "piece": metrics per piece from its mean window probabilities}."""
    probs, labels, piece = np.asarray(probs), np.asarray(labels, dtype=np.int64), np.asarray(piece)
    ids, mean = aggregate_pieces(probs, piece)
    _, first = np.unique(piece, return_index=True)
    truth = labels[first]
    if np.any(labels != truth[np.searchsorted(ids, piece)]):
        raise ValueError("windows of one piece carry different labels")
    return {
        "window": metrics(labels, probs.argmax(-1), class_names),
        "piece": metrics(truth, mean.argmax(-1), class_names),
    }


def _json(obj) -> str:
    """JSON text; numpy scalars and arrays (say in "scale") become plain numbers and lists."""
    return json.dumps(obj, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)) + "\n"


def _markdown(results: dict) -> str:
    """A readable summary: what ran, accuracy and macro-F1 per level, and a per-class table per level."""
    scale = ", ".join(f"{k}={v}" for k, v in results.get("scale", {}).items()) or "—"
    lines = [
        f"# {results['task']}: {results['model']} ({results['representation']}) on {results.get('dataset', '?')}",
        "",
        f"scale: {scale}; seed: {results.get('seed', '—')}",
        "",
        "| level | n | accuracy | macro-F1 |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {level} | {m['n']} | {m['accuracy']:.2%} | {m['macro_f1']:.4f} |" for level, m in results["levels"].items()
    ]
    lines += [
        f"\n{level}: arousal {m['axes']['arousal']:.2%}, valence {m['axes']['valence']:.2%}"
        for level, m in results["levels"].items()
        if "axes" in m
    ]
    for level, m in results["levels"].items():
        lines += [
            "",
            f"## {level}",
            "",
            "| class | precision | recall | F1 | support |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |"
            for name, c in m["per_class"].items()
        ]
    return "\n".join(lines) + "\n"


def write_results(run_dir: str | os.PathLike, results: dict) -> None:
    """Write results.json, results.md and confusion_{level}.png / .json for each level into ``run_dir``.

    ``results`` is::

        {"task": "melody" | "melody2" | "velocity" | "style" | "emotion",
         "model": "bert" | "rnn" | "skyline" | "majority",
         "representation": "cp" | "remi",
         "dataset": str,
         "class_names": [str, ...],
         "levels": {"window": metrics(...), "note" | "piece": metrics(...)},  # from evaluate_*_task
         "scale": {free-form: model size, steps, windows, ...},
         "seed": int}
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "results.json", _json(results))
    write_atomic(run_dir / "results.md", _markdown(results))
    for level, m in results["levels"].items():
        write_atomic(
            run_dir / f"confusion_{level}.json",
            _json({"class_names": list(results["class_names"]), "matrix": m["confusion"]}),
        )
        with atomic_path(run_dir / f"confusion_{level}.png") as tmp:  # viz writes PNG whatever the suffix
            viz.confusion_matrix(np.asarray(m["confusion"]), results["class_names"], tmp)


def split_sources(
    dataset: str,
    path: str | os.PathLike | None = None,
    *,
    kind: str = "score",
    split: str | None = "test",
    limit: int | None = None,
    split_seed: int = 42,
    **options,
) -> tuple[list, list]:
    """(pieces, MIDI sources) of one split of a dataset (None: every piece), each loaded as
    fine-tuning read it for a tokenizer of `kind` (POP909 scores realigned to their beats), for a
    Classifier to predict.

    `split_seed` must be the fine-tuning run's (results.json has it): datasets without a published
    split (EMOPIA, the sample corpus) are split by it, and another would test on pieces the model
    trained on."""
    from midibert.datasets import get_info, read

    info = get_info(dataset)
    pieces = [p for p in read(dataset, path, seed=split_seed, **options) if split is None or p.split == split][:limit]
    if not pieces:
        raise ValueError(f"{dataset}: no pieces" + (f" in the {split} split" if split else ""))
    return pieces, [info.load(p, kind) if info.load else p.path for p in pieces]


def prediction_truth(pred, piece, label_key: str | None = None) -> np.ndarray:
    """True class of each note of `pred` (IGNORE where the tokenizer dropped it), from the MIDI
    itself (POP909 track names, velocities) as the prediction's task labels it, or of the piece,
    from its `label_key` label."""
    from midibert.tasks import get_task
    from midibert.tokenize.labels import MELODY_CLASSES, melody_classes, velocity_classes

    if pred.level == "piece":
        return np.array([pred.class_names.index(piece.labels[label_key])])
    task = get_task(pred.task)
    if task.label == "velocity":
        truth = velocity_classes(pred.velocity)
    else:
        n = 2 if task.label == "melody2" else 3
        truth = melody_classes(pred.track, n)
        if task.answer:  # the model's classes as the task answers them (melody: melody or bridge)
            into = {c: i for i, a in enumerate(task.answer) for c in task.answer[a]}
            truth = np.array([into[c] for c in MELODY_CLASSES[n]])[truth]
    return np.where(np.asarray(pred.labels) != "", truth, IGNORE)


def score_predictions(preds: Sequence, pieces: Sequence, label_key: str | None = None) -> dict:
    """metrics() of a Classifier's predictions on pieces of a labelled split, over notes or pieces."""
    truth = np.concatenate([prediction_truth(p, piece, label_key) for p, piece in zip(preds, pieces)])
    predicted = np.concatenate([_predicted(p) for p in preds])
    known = truth != IGNORE
    return metrics(truth[known], predicted[known], preds[0].class_names)


def skyline_metrics(preds: list, pieces: list) -> dict:
    """The skyline rule's metrics on the notes of `preds` (melody where highest at its onset)."""
    from midibert.baselines import skyline_classes

    truth, guess = [], []
    for p, piece in zip(preds, pieces):
        t = prediction_truth(p, piece)
        onset = p.encoding.notes.onset[np.argsort(p.encoding.notes.source_index, kind="stable")]  # file order
        keep = t != IGNORE
        truth.append(t[keep])
        guess.append(skyline_classes(p.pitch, onset, len(p.class_names))[keep])
    return metrics(np.concatenate(truth), np.concatenate(guess), preds[0].class_names)


def statistics_scorer(train: tuple[list, list], tokenizer, label_key: str, class_names):
    """The note-statistics baseline (the release gate's rule) fitted to `train` (pieces, sources),
    reading the files as `tokenizer` does: a function of test (pieces, sources) -> its metrics."""
    from midibert.baselines import statistics_classifier, statistics_matrix

    def features(sources):
        return statistics_matrix([tokenizer.encode(f) for f in sources], tokenizer.config)

    def classes(pieces):
        return [list(class_names).index(p.labels[label_key]) for p in pieces]

    clf = statistics_classifier()
    clf.fit(features(train[1]), classes(train[0]))
    return lambda test: metrics(classes(test[0]), clf.predict(features(test[1])), class_names)


def statistics_metrics(
    train: tuple[list, list], test: tuple[list, list], tokenizer, label_key: str, class_names
) -> dict:
    """The note-statistics baseline's metrics on `test` (pieces, sources), fitted to `train`'s."""
    return statistics_scorer(train, tokenizer, label_key, class_names)(test)


def agreement(a: Sequence, b: Sequence) -> float:
    """Share of notes (or pieces) two classifiers' predictions of the same pieces label alike."""
    x, y = np.concatenate([_predicted(p) for p in a]), np.concatenate([_predicted(p) for p in b])
    return float((x == y).mean())


def _predicted(pred) -> np.ndarray:
    """Predicted class ids of a Prediction: one per note (IGNORE for dropped notes), or one."""
    labels = [pred.labels] if pred.level == "piece" else pred.labels
    return np.array([pred.class_names.index(c) if c else IGNORE for c in labels], dtype=np.int64)
