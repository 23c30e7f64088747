"""Melody model across domains: how the packaged melody model, trained on POP909's pop songs,
finds the tune in music it never saw, beside the skyline rule (the highest note at each onset)
and the top-line rule (the highest note sounding, `midibert.baselines.top_line`).

    python benchmarks/melody_cross_domain.py --out /tmp/cross_domain   # every chorale and quartet movement
    python benchmarks/melody_cross_domain.py --limit 5                  # 5 files per genre: a quick look
    python benchmarks/melody_cross_domain.py --model runs/run/release/melody-bert-then/bundle
    python benchmarks/melody_cross_domain.py --pop909                   # and POP909's test songs, raw

The music is music21's bundled corpus (no network), two genres:

- chorale: J.S. Bach's four-part chorales (parts Soprano, Alto, Tenor, Bass); the soprano, the
  chorale tune, is the melody, the other voices accompaniment.
- string quartet: the quartet movements (Beethoven op. 18, 59, 74, 132, 133; Haydn op. 1, 74;
  Mozart K. 80, 155, 156, 458; Schumann op. 41), parts two violins, viola and cello; the first
  violin is the melody. This is a proxy: in quartets the tune sometimes moves to another voice,
  and the first violin sometimes accompanies, so both scores are measured against an imperfect
  reference and neither can reach 1.

Files are picked by the corpus's metadata (four parts, in sorted path order; where a piece comes
in several formats, MusicXML first) and kept when their part names are those above, so the first
part is always the melody. Lieder and the `nottingham-dataset` folder are never read: they
overlap held-out evaluation sets; nor are Monteverdi's madrigals, which the packaged melody model
trains on (`midibert.datasets.madrigals`, which converts scores for both).

Each score is written as one track per part (480 ticks per quarter, its time signatures, a pickup
bar completed by a rest so bar lines fall where the score has them; cached under `--cache`, never
next to the corpus), then all parts are merged into one piano track, as a user's file would have
them: a note sounding in two parts at once (same onset and pitch) is kept once, as melody if the
melody part plays it. The model labels every note tune (melody or bridge) or accompaniment; a note
the tokenizer dropped counts as accompaniment, and how many there were is reported. Melody F1,
precision and recall (positive class: melody) are over all notes of a genre pooled, for the model
and the rules on the same notes. The model answers twice: as `midibert classify --task melody` does
(every note it calls tune) and as `--line` does (the tune as one line: of those notes, the ones no
higher tune note sounds over). With `--pop909` the same figures on POP909's test songs read as raw
files (needs the dataset, `midibert data`), the domain the model was trained in, whose tune is not
one line. A file that fails to convert or classify is skipped and listed with its reason.

The default run scores every file: 365 chorales and 51 quartet movements, 270,000 notes; on one
CPU core about 4 minutes the first time, most of it music21 reading the quartets, then about 30 s
from the cache.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import symusic
from sklearn.metrics import f1_score, precision_score, recall_score
from tqdm import tqdm

from midibert.baselines import skyline_melody, top_line
from midibert.bundle import weights_digest
from midibert.classify import Classifier
from midibert.datasets.madrigals import convert, part_names, track
from midibert.datasets.madrigals import to_score as score_of
from midibert.fsutil import write_atomic
from midibert.pretrained import resolve

# the part names of each genre in score order (substrings of the lower-cased name); the first is the melody
ROLES = {
    "chorale": ("soprano", "alto", "tenor", "bass"),
    "string quartet": ("violin", "violin", "viola", "cello"),
}
# what each genre is, as a model card names its sources
SOURCES = {
    "chorale": "J.S. Bach's four-part chorales (the soprano as melody)",
    "string quartet": "string quartet movements by Beethoven, Haydn, Mozart and Schumann (the first violin as "
    "melody, a proxy)",
}
FOLDERS = {"chorale": ("bach",), "string quartet": ("beethoven", "haydn", "mozart", "schumann_robert")}
# never read, whatever the metadata says: they overlap held-out evaluation sets (Dichterliebe is op. 48)
NEVER = ("nottingham-dataset", "lied", "dichterliebe", "opus48")
FORMATS = (".mxl", ".xml", ".musicxml", ".krn")  # the first a piece has is read


def candidates(genre: str) -> list[str]:
    """Corpus paths (relative, sorted) of the genre's four-part scores, by the corpus's metadata
    alone (no score is parsed): one file per piece where it comes in several formats."""
    from music21 import corpus

    best: dict[str, str] = {}
    # searched first: walking the whole bundle takes music21 quadratic time (it lists it per entry)
    for entry in corpus.corpora.CoreCorpus().metadataBundle.search(4, "numberOfParts"):
        path = str(entry.sourcePath)
        suffix = Path(path).suffix
        if (
            path.split("/")[0] not in FOLDERS[genre]
            or any(word in path.lower() for word in NEVER)
            or suffix not in FORMATS
            or entry.number is not None  # one work of a multi-work file
        ):
            continue
        stem = path.removesuffix(suffix)
        if stem not in best or FORMATS.index(suffix) < FORMATS.index(Path(best[stem]).suffix):
            best[stem] = path
    return sorted(best.values())


def genre_parts(genre: str):
    """The track names of a score of `genre` from its part names (`madrigals.convert`): its part
    names, or None when they are not the genre's."""

    def names(parts: list[str]) -> list[str] | None:
        roles = ROLES[genre]
        return parts if len(parts) == len(roles) and all(r in n for r, n in zip(roles, parts)) else None

    return names


def to_score(score, genre: str) -> symusic.Score | None:
    """A music21 score as one symusic track per part, or None when its parts are not the genre's."""
    names = genre_parts(genre)(part_names(score))
    return None if names is None else score_of(score, names)


def load(path: str, genre: str, cache: Path) -> symusic.Score | None:
    """The score of a corpus file as a MIDI file holds it, one track per part (the melody's first),
    converted once into `cache`; None when its parts are not the genre's."""
    midi = convert(path, cache / (path.replace("/", "__") + ".mid"), genre_parts(genre))
    # read back even when just written: MIDI pairs the ends of overlapping notes of one pitch in
    # a track its own way, and the first run must see the notes every later run reads
    return None if midi is None else symusic.Score(str(midi))


def merge(score: symusic.Score, melody_track: int = 0) -> tuple[symusic.Score, np.ndarray, int]:
    """All tracks of `score` as one piano track sorted by onset and pitch, the track each of its
    notes came from, and how many duplicates (same onset and pitch) were dropped: of those the
    melody track's copy is kept, since a doubled tune note is still the tune."""
    arrays = [t.notes.numpy() for t in score.tracks]
    cols = {k: np.concatenate([a[k] for a in arrays]).astype(np.int64) for k in arrays[0].keys()}
    part = np.concatenate([np.full(len(a["time"]), i) for i, a in enumerate(arrays)])
    order = np.lexsort((part != melody_track, cols["pitch"], cols["time"]))
    t, p = cols["time"][order], cols["pitch"][order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (t[1:] != t[:-1]) | (p[1:] != p[:-1])
    keep = order[first]
    out = symusic.Score(score.tpq)
    out.time_signatures = score.time_signatures.copy()
    out.tracks.append(track("Piano", *(cols[k][keep] for k in ("time", "duration", "pitch", "velocity"))))
    return out, part[keep], int(len(order) - len(keep))


def predict(clf: Classifier, merged: symusic.Score) -> tuple[np.ndarray, np.ndarray, int]:
    """The model's melody (1) / accompaniment (0) for each note of a one-track score, in its note
    order, as it answers and as one line, and how many notes had no label (dropped by the
    tokenizer; counted as accompaniment). Raises if the prediction's notes are not the score's, so
    a label never lands on the wrong note."""
    pred = clf.predict(merged)
    notes = merged.tracks[0].notes.numpy()
    if not (np.array_equal(pred.pitch, notes["pitch"]) and np.array_equal(pred.onset, notes["time"])):
        raise ValueError("the prediction's notes are not the file's notes, in its order")
    said = answers(pred)
    return said["model"], said["line"], int((np.asarray(pred.labels) == "").sum())


def answers(pred) -> dict[str, np.ndarray]:
    """A melody prediction's melody (1) / accompaniment (0) per note: as the model answers, as one line."""
    return {k: (np.asarray(p.labels) == "melody").astype(np.int64) for k, p in (("model", pred), ("line", pred.line()))}


def rules(pitch: np.ndarray, onset: np.ndarray, duration: np.ndarray) -> dict[str, np.ndarray]:
    """The rule baselines' melody (1) / accompaniment (0) for each note."""
    return {"skyline": skyline_melody(pitch, onset), "top_line": top_line(pitch, onset, onset + duration)}


GUESSES = ("model", "line", "skyline", "top_line")  # the model as it answers, as one line; the two rules


def scores(truth: np.ndarray, **guesses: np.ndarray) -> dict:
    """Melody precision, recall and F1 of each of `guesses` (GUESSES) against `truth`, pooled."""

    def prf(pred: np.ndarray) -> dict:
        kw = {"y_true": truth, "y_pred": pred, "zero_division": 0}
        return {
            "precision": float(precision_score(**kw)),
            "recall": float(recall_score(**kw)),
            "f1": float(f1_score(**kw)),
            "melody_share": float(pred.mean()) if len(pred) else 0.0,
        }

    out = {"notes": len(truth), "melody_notes": int(truth.sum()), **{k: prf(v) for k, v in guesses.items()}}
    out["f1_difference"] = out["model"]["f1"] - out["skyline"]["f1"]
    return out


def markdown(result: dict) -> str:
    """The table (a row per genre and one for all files), then what was not scored and why."""
    lines = [
        f"Model: {result['model']} (melody: its tune, POP909's melody or bridge); music21 corpus; melody F1, "
        "precision and recall (positive class: melody) over the notes of a genre pooled.",
        "",
        "| genre | files | notes | melody notes | model P | model R | model F1 | skyline P | skyline R | skyline F1 "
        "| F1 model − skyline | model's melody share | model, one line: F1 | top-line rule: F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = dict(result["genres"])
    if "pop909" in result:
        rows["POP909 test songs, raw (trained on POP909)"] = result["pop909"]
    for name, s in rows.items():
        m, k = s["model"], s["skyline"]
        lines.append(
            f"| {name} | {s['files']} | {s['notes']:,} | {s['melody_notes']:,} | {m['precision']:.3f} | "
            f"{m['recall']:.3f} | {m['f1']:.3f} | {k['precision']:.3f} | {k['recall']:.3f} | {k['f1']:.3f} | "
            f"{s['f1_difference']:+.3f} | {m['melody_share']:.1%} | {s['line']['f1']:.3f} | {s['top_line']['f1']:.3f} |"
        )
    lines += [
        "",
        "One line: the notes the model calls tune that no higher tune note sounds over (`midibert classify "
        "--line`). Top-line rule: the highest note sounding.",
        "String quartet: the first violin stands in for the melody, a proxy (the tune sometimes moves to "
        "another voice).",
        "Share of each part's notes the model calls melody: "
        + "; ".join(
            f"{g}: " + ", ".join(f"{n} {x:.0%}" for n, x in zip(result["parts"][g], s["model_tune_share_by_part"]))
            for g, s in result["genres"].items()
            if "model_tune_share_by_part" in s
        )
        + ".",
        f"Notes without a label (dropped by the tokenizer, counted as accompaniment): {result['unlabelled']}; "
        f"duplicate notes merged: {result['duplicates']}.",
        f"Skipped: {len(result['skipped'])} files; not of the genre's parts: {len(result['excluded'])} files; "
        f"{result['seconds']:.0f} s.",
    ]
    lines += [f"- {s['genre']}: {s['path']}: {s['reason']}" for s in result["skipped"]]
    return "\n".join(lines) + "\n"


def run_genre(
    genre: str, clf: Classifier, paths: list[str], read: Callable, limit: int | None, result: dict
) -> dict[str, np.ndarray]:
    """Score up to `limit` of a genre's files (`read(path)`: its score, one track per part, the
    melody's first; None when it is not of the genre) into `result` (files, skipped, excluded);
    returns the pooled truth, the labels of each of GUESSES and each note's part."""
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in ("truth", *GUESSES, "part")}
    done = 0
    for path in tqdm(paths, desc=genre):
        if limit is not None and done >= limit:
            break
        try:
            score = read(path)
            if score is None:
                result["excluded"].append({"genre": genre, "path": path})
                continue
            merged, part, duplicates = merge(score)
            model, line, unlabelled = predict(clf, merged)
            truth = part == 0
            result["parts"].setdefault(genre, [t.name for t in score.tracks])
        except Exception as e:  # music21 and the tokenizer raise many kinds; one bad file must not end the run
            result["skipped"].append({"genre": genre, "path": path, "reason": f"{type(e).__name__}: {e}"})
            continue
        notes = merged.tracks[0].notes.numpy()
        guesses = {"model": model, "line": line, **rules(notes["pitch"], notes["time"], notes["duration"])}
        for key, labels in (("truth", truth.astype(np.int64)), *guesses.items(), ("part", part)):
            pooled[key].append(labels)
        s = scores(truth, **guesses)
        result["files"].append({"genre": genre, "path": path, "duplicates": duplicates, "unlabelled": unlabelled, **s})
        done += 1
    return {k: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for k, v in pooled.items()}


def pop909(clf: Classifier) -> dict:
    """The figures of `scores` on POP909's test songs read as raw files, the model's own domain
    (notes the tokenizer dropped left out, as its benchmark does)."""
    from midibert.evaluate import IGNORE, prediction_truth, split_sources

    pieces, sources = split_sources("pop909", kind="score", timing="raw")
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in ("truth", *GUESSES)}
    for piece, src in zip(pieces, tqdm(sources, desc="pop909")):
        pred = clf.predict(src)
        truth = prediction_truth(pred, piece)
        keep = truth != IGNORE
        guesses = {
            "truth": (truth == pred.class_names.index("melody")).astype(np.int64),
            **answers(pred),
            **rules(pred.pitch, pred.onset, pred.duration),
        }
        for k, v in guesses.items():
            pooled[k].append(v[keep])
    labels = {k: np.concatenate(v) for k, v in pooled.items()}
    return {"files": len(pieces), **scores(labels.pop("truth"), **labels)}


def measure(
    model: str,
    genres: dict[str, tuple[list[str], Callable]],
    corpus: str,
    sources: dict[str, str],
    limit=None,
    pop909_songs: bool = False,
) -> dict:
    """The result of scoring `model` on every genre (name -> its paths and reader, see `run_genre`):
    per file, per genre and over all files, with what was skipped and why; with `pop909_songs`,
    on POP909's test songs too (`pop909`)."""
    started = time.monotonic()
    bundle = resolve(model, task="melody")  # once: a Hub id is fetched here
    clf = Classifier.from_pretrained(bundle)
    result = {
        "model": str(model),
        # what `midibert release export --cross-domain` matches the result to: the very weights scored
        "weights_sha256": weights_digest(bundle),
        "corpus": corpus,
        "sources": sources,
        "limit": limit,
        "files": [],
        "skipped": [],
        "excluded": [],
        "parts": {},  # genre -> its parts' names, in score order (the melody's first)
        "genres": {},
    }
    pooled = {genre: run_genre(genre, clf, paths, read, limit, result) for genre, (paths, read) in genres.items()}
    pooled["all"] = {k: np.concatenate([g[k] for g in pooled.values()]) for k in ("truth", *GUESSES)}
    for name, labels in pooled.items():
        files = [f for f in result["files"] if name in (f["genre"], "all")]
        result["genres"][name] = {"files": len(files), **scores(labels["truth"], **{k: labels[k] for k in GUESSES})}
        if name in result["parts"]:  # where the model finds the tune: the share of each part's notes it calls so
            part, model = labels["part"], labels["model"]
            result["genres"][name]["model_tune_share_by_part"] = [
                float(model[part == k].mean()) if (part == k).any() else 0.0 for k in range(len(result["parts"][name]))
            ]
    if pop909_songs:
        result["pop909"] = pop909(clf)
    result["unlabelled"] = sum(f["unlabelled"] for f in result["files"])
    result["duplicates"] = sum(f["duplicates"] for f in result["files"])
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="folder for cross_domain.json and cross_domain.md")
    p.add_argument("--limit", type=int, help="files scored per genre (default: all)")
    p.add_argument("--model", default="melody", help="packaged name, bundle folder or Hub id")
    p.add_argument("--pop909", action="store_true", help="also POP909's test songs read raw (needs the dataset)")
    p.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "midibert-cross-domain",
        help="converted MIDI files (default: in the temporary folder)",
    )
    args = p.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    genres = {g: (candidates(g), lambda path, g=g: load(path, g, args.cache)) for g in ROLES}
    result = measure(args.model, genres, "music21's bundled corpus", SOURCES, args.limit, args.pop909)
    table = markdown(result)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        write_atomic(args.out / "cross_domain.json", json.dumps(result, indent=1) + "\n")
        write_atomic(args.out / "cross_domain.md", table)
    return result


if __name__ == "__main__":
    main()
