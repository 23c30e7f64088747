"""Linear probe: what pre-training put into an encoder's piece embeddings, measured as a logistic
regression on frozen embeddings of a labelled dataset, beside the same regression on the note
statistics (the rule baseline of the piece tasks) and on a random-weight encoder of the same size.

    from midibert.probe import linear_probe
    linear_probe("pianist8", "data/pianist8", encoder="midibert-small-performance")
    # {"encoder": {...}, "random encoder": {...}, "note statistics": {...}}  accuracy, macro-F1, n

The regression trains on the train and validation pieces and is scored on the test pieces of the
dataset's split (published, or drawn with `split_seed`).
"""

from __future__ import annotations

from midibert.errors import require_extra

require_extra("train")

import os
from collections.abc import Callable

import numpy as np
import torch

from midibert.baselines import note_statistics
from midibert.bundle import Bundle, load_bundle
from midibert.datasets import get_info, read
from midibert.embedding import Embedder, encoder_state
from midibert.evaluate import metrics
from midibert.model import MidiBert
from midibert.pretrained import default_encoder, resolve


def random_twin(bundle: Bundle, seed: int = 0) -> Bundle:
    """The same encoder (size, tokenizer) with the random weights it started from before pre-training."""
    torch.manual_seed(seed)
    state = MidiBert(bundle.model_config).state_dict()
    if bundle.task is not None:
        state = {f"encoder.{k}": v for k, v in state.items()}
        state = {**bundle.state_dict, **state}
    return Bundle(bundle.path, bundle.model_config, bundle.tokenizer, state, bundle.task, bundle.id2label)


def _fit_score(x: dict[str, np.ndarray], y: dict[str, np.ndarray], classes: list[str], c: float) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    clf.fit(x["train"], y["train"])
    m = metrics(y["test"], clf.predict(x["test"]), classes)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"]}


def linear_probe(
    dataset: str,
    path: str | os.PathLike | None = None,
    *,
    encoder: str | os.PathLike | None = None,
    label_key: str | None = None,
    split_seed: int = 42,
    c: float = 1.0,
    progress: Callable | None = None,
    **options,
) -> dict[str, dict]:
    """Probe accuracy, macro-F1 and test pieces for the encoder's embeddings, a random-weight twin's
    and the note statistics, on one labelled dataset. Pieces that fail to read are left out of all
    three (the result's "skipped" says how many)."""
    info = get_info(dataset)
    key = label_key or info.label_key
    bundle = load_bundle(resolve(encoder or default_encoder(info.kind)))
    encoder_state(bundle)  # refuses a bundle with no BERT encoder before any work
    pieces = [p for p in read(dataset, path, seed=split_seed, **options) if p.split and p.labels.get(key)]
    kind = bundle.tokenizer.config.kind
    readers = {"encoder": Embedder(bundle), "random encoder": Embedder(random_twin(bundle))}
    rows: dict[str, list] = {name: [] for name in (*readers, "note statistics")}
    kept = []
    for piece in progress(pieces) if progress else pieces:
        src = info.load(piece, kind) if info.load else piece.path
        try:
            enc = readers["encoder"].encode(src)
        except ValueError:  # a file that does not read is a skipped piece, for every probe alike
            continue
        for name, reader in readers.items():  # the twin shares the tokenizer: one encoding serves both
            rows[name].append(reader.embed_encoded([enc])[0])
        rows["note statistics"].append(
            note_statistics(enc.notes, bundle.tokenizer.config.resolution, velocity=bundle.tokenizer.config.performance)
        )
        kept.append(piece)
    classes = sorted({p.labels[key] for p in kept})
    split = np.array(["test" if p.split == "test" else "train" for p in kept])
    y_all = np.array([classes.index(p.labels[key]) for p in kept])
    y = {s: y_all[split == s] for s in ("train", "test")}
    out = {}
    for name, vectors in rows.items():
        x_all = np.stack(vectors)
        out[name] = _fit_score({s: x_all[split == s] for s in ("train", "test")}, y, classes, c)
    out["skipped"] = len(pieces) - len(kept)
    return out


def table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown: one row per dataset, accuracy (macro-F1) of each probe."""
    probes = ("encoder", "random encoder", "note statistics")
    lines = [
        "| dataset | test pieces | " + " | ".join(f"{p} acc % (macro-F1)" for p in probes) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in probes) + " |",
    ]
    for dataset, r in results.items():
        cells = [f"{r[p]['accuracy'] * 100:.2f} ({r[p]['macro_f1'] * 100:.1f})" for p in probes]
        lines.append(f"| {dataset} | {r['encoder']['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
