"""Inference: a fine-tuned bundle labels the notes (melody, velocity) or the piece (style,
emotion) of any MIDI file, of any length.

    from midibert.classify import Classifier
    clf = Classifier.from_pretrained("runs/run/demo/melody-bert/bundle")  # or a packaged name, or a Hub id
    res = clf.predict("song.mid")          # also bytes, symusic / miditoolkit / pretty_midi objects
    res.labels, res.probs                  # per note (file order) or per piece
    res.to_midi("annotated.mid")
    res.line()                             # melody: the tune as one line (part music)

    import midibert.classify as mc
    mc.melody("song.mid")                  # the packaged melody model (`midibert models` lists them)
    mc.melody("song.mid", model="runs/.../melody-bert/bundle")

Long pieces are cut into windows; a note's prediction averages the probabilities of all its
tokens in all windows, so every note gets exactly one label; a piece's label averages its
windows. On CPU the default is fast (int8 linear layers, windows that do not overlap); on CUDA,
or with `quantize=False, overlap=seq_len // 4`, fp32 with overlapping windows as fine-tuning
evaluates (`overlap`: the tokens each window repeats of the one before).
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import symusic
import torch

from midibert.bundle import Bundle, load_bundle, save_bundle
from midibert.fsutil import atomic_path
from midibert.network import build_network, hidden_families, network_input
from midibert.pretrained import default_model, resolve
from midibert.tasks import REGISTRY, Task, answers, of_bundle, writes_of
from midibert.tokenize import Encoding
from midibert.tokenize.labels import VELOCITY_EDGES
from midibert.tokenize.notes import MidiSource, describe
from midibert.tokenize.windows import Windows, aggregate_notes, evaluation_overlap, make_windows

# CPU inference by default (quantize=None, overlap=None): Linear layers in dynamic int8, and a
# note-level piece cut into windows that do not overlap: together about twice fp32's work per
# CPU-second at the same accuracy, where either alone falls short (benchmarks/classify.py,
# docs/speed.md). On CUDA, fp32 with overlapping windows: there speed comes from batching.
INT8_ON_CPU = True
OVERLAP_ON_CPU = 0
MELODY_TRACKS = {"melody": "MELODY", "bridge": "BRIDGE", "accompaniment": "ACCOMPANIMENT"}
# A played piano file has many loudnesses (no EMOPIA clip has fewer than 18 distinct velocities,
# no Pianist8 piece fewer than 38); one entered in a sequencer or notation program has a handful
# (VGMIDI's phrases: 3 in the median one), which a model reading velocity takes for played loudness.
ENTERED_VELOCITIES = 12


def has_tune(level: str, class_names: list[str]) -> bool:
    """Whether predictions of these classes say which notes are the tune (a melody task's)."""
    return level == "note" and "accompaniment" in class_names


@dataclass
class Prediction:
    """What a classifier says about one piece.

    Note-level tasks: `labels` / `probs` per note in the file's note order (track by track),
    with `onset` (seconds-free: source ticks), `pitch` and `track` of each note. Piece-level
    tasks: `labels` is one name and `probs` one row.
    """

    source: str
    task: str
    level: str  # "note" or "piece"
    class_names: list[str]
    labels: list[str] | str
    probs: np.ndarray
    encoding: Encoding = field(repr=False)
    caveats: tuple[str, ...] = ()
    """What about the file makes the answer less sure than the model's figures: for a model that
    reads velocity, a file whose velocities look entered, not played (fewer than 12 distinct)."""

    @property
    def label(self) -> str:
        """The piece's label, or the most common note label."""
        if self.level == "piece":
            return self.labels
        names, counts = np.unique(np.asarray(self.labels), return_counts=True)
        return str(names[counts.argmax()])

    @property
    def confidence(self) -> float:
        """The piece's top probability, or the mean top probability of the labelled notes."""
        if self.level == "piece":
            return float(self.probs.max())
        return float(np.nanmax(self.probs, 1, initial=0).mean())  # a note without tokens counts as 0

    def shares(self) -> dict[str, float]:
        """Share of notes per class (note-level tasks)."""
        labels = np.asarray(self.labels)
        return {c: float((labels == c).mean()) for c in self.class_names}

    def line(self) -> Prediction:
        """The tune as one line, for music whose tune is one voice (a hymn's soprano, a quartet's
        first violin): a note keeps its tune label (any class but accompaniment) only when no
        higher tune note sounds as it starts (`midibert.baselines.top_line`); the others become
        accompaniment. The probabilities stay the model's. POP909's tune is not one line (its
        bridge is in chords a quarter of the time), so there this loses tune notes."""
        if not has_tune(self.level, self.class_names):
            raise ValueError(f"{self.source}: one tune line is for a melody model's prediction, not {self.task!r}")
        from midibert.baselines import top_line

        n, order = self.encoding.notes, self._file_order()
        labels = np.asarray(self.labels)
        tune = (labels != "accompaniment") & (labels != "")
        on = top_line(n.pitch[order], n.start[order], n.end[order], among=tune).astype(bool)
        return replace(self, labels=np.where(tune & ~on, "accompaniment", labels).tolist())

    def _file_order(self) -> np.ndarray:
        return np.argsort(self.encoding.notes.source_index, kind="stable")

    @property
    def onset(self) -> np.ndarray:
        """Onset of each note in source ticks, file order."""
        return self.encoding.notes.start[self._file_order()]

    @property
    def duration(self) -> np.ndarray:
        """Duration of each note in source ticks, file order."""
        order = self._file_order()
        return self.encoding.notes.end[order] - self.encoding.notes.start[order]

    @property
    def velocity(self) -> np.ndarray:
        """Velocity of each note as the file has it, file order."""
        return self.encoding.notes.velocity[self._file_order()]

    @property
    def pitch(self) -> np.ndarray:
        """Pitch of each note, file order."""
        return self.encoding.notes.pitch[self._file_order()]

    @property
    def track(self) -> np.ndarray:
        """Source track name of each note, file order."""
        return self.encoding.notes.track_name[self._file_order()]

    def to_json(self) -> str:
        """One JSON object: source, task, label and confidence, and the probabilities (piece) or
        each note's onset, pitch, track and label (notes)."""
        d = {
            "source": self.source,
            "task": self.task,
            "level": self.level,
            "label": self.label,
            "confidence": round(self.confidence, 4),
        }
        if self.caveats:
            d["caveats"] = list(self.caveats)
        if self.level == "piece":
            d["probs"] = dict(zip(self.class_names, np.round(self.probs, 4).tolist()))
        else:
            n, order = self.encoding.notes, self._file_order()
            d["shares"] = self.shares()
            d["notes"] = [
                {"start": int(n.start[i]), "pitch": int(n.pitch[i]), "track": n.track_names[n.track[i]], "label": lab}
                for i, lab in zip(order, self.labels)
            ]
        return json.dumps(d)

    def to_midi(self, path: str | os.PathLike) -> Path:
        """The piece's notes, re-timed as in the source, written with the prediction applied as its
        task says (`Task.writes`): melody -> a track per class (MELODY, ACCOMPANIMENT, ...);
        velocity -> predicted velocities; piece tasks -> one track and a marker naming the label."""
        n, order = self.encoding.notes, self._file_order()
        score = symusic.Score(n.tpq)
        velocity = n.velocity[order]
        labels = np.asarray(self.labels)
        writes = writes_of(self.task, self.level)
        if writes == "velocity":  # the middle of each predicted bin; a note without tokens keeps its own
            edges = np.asarray(VELOCITY_EDGES)
            mid = ((edges[:-1] + edges[1:]) // 2).clip(1, 127)
            velocity = np.where(labels != "", mid[np.nan_to_num(self.probs, nan=-1).argmax(1)], velocity)
        groups = (
            {MELODY_TRACKS.get(c, c.upper()): labels == c for c in self.class_names}
            if writes == "tracks"
            else {"Piano": np.ones(len(order), dtype=bool)}
        )
        if writes == "tracks" and (labels == "").any():  # notes the tokenizer dropped are kept too
            groups["UNLABELLED"] = labels == ""
        for name, keep in groups.items():
            track = symusic.Track(name, 0, False)
            idx = order[keep]
            if len(idx):
                track.notes = symusic.Note.from_numpy(
                    time=n.start[idx].astype(np.int32),
                    duration=np.maximum(n.end[idx] - n.start[idx], 1).astype(np.int32),
                    pitch=n.pitch[idx].astype(np.int8),
                    velocity=velocity[keep].astype(np.int8),
                )
            score.tracks.append(track)
        if self.level == "piece":
            score.markers.append(symusic.TextMeta(0, f"midibert {self.task}: {self.label} ({self.confidence:.2f})"))
        with atomic_path(path) as tmp:
            score.dump_midi(str(tmp))
        return Path(path)


def int8_engine() -> str:
    """The quantized engine for int8 linear layers: oneDNN where the CPU has VNNI integer dot
    products (benchmarks/classify.py on a VNNI Xeon: 1.5-1.9x less CPU time than fp32, against
    1.3-1.6x for torch's default x86 engine), else torch's default choice."""
    vnni = getattr(torch.cpu, "_is_vnni_supported", lambda: False)()  # private: absent in some torch versions
    return (
        "onednn" if vnni and "onednn" in torch.backends.quantized.supported_engines else torch.backends.quantized.engine
    )


@contextmanager
def quantized_engine(name: str):
    """Run with torch's global quantized engine set to `name`, restoring the caller's afterwards:
    weights packed for one engine run slowly under another."""
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = old


def int8_linears(net: torch.nn.Module, engine: str) -> torch.nn.Module:
    """`net` with its Linear layers as dynamic int8 (int8 weights, activations quantized per call)
    packed for `engine`: the CPU's integer units do the work that dominates an encoder's time."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings(), quantized_engine(engine):  # torch.ao.quantization is deprecated for torchao; works
        warnings.simplefilter("ignore")
        return quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)


class WindowReader:
    """What `Classifier` and `midibert.embedding.Embedder` share: a network on a device (int8 linear
    layers on CPU by default), a tokenizer, and a piece cut into windows and run batch by batch.

    Subclasses set `net`, `level` ("note": overlapping windows, a row per token; "piece":
    end-aligned windows, a row per window) and `width` (what the network gives per row), and
    define `_forward` on one batch.
    """

    level: str = "piece"
    width: int = 0

    def _setup(
        self,
        bundle: Bundle,
        net: torch.nn.Module,
        device: str | None,
        seq_len: int | None,
        overlap: int | None,
        batch_size: int | None,
        quantize: bool | str | None,
    ) -> None:
        self.bundle, self.tokenizer = bundle, bundle.tokenizer
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.net = net.to(self.device).eval()
        # quantize: None = the CPU default, True = int8 on the best engine, or an engine's name
        if quantize is None:
            quantize = self.device.type == "cpu" and INT8_ON_CPU
        self.engine = (int8_engine() if quantize is True else quantize) if quantize else None
        if self.engine:
            if self.engine not in torch.backends.quantized.supported_engines:
                raise ValueError(
                    f"quantize={self.engine!r}: not one of this torch's engines "
                    f"{torch.backends.quantized.supported_engines}"
                )
            if self.device.type != "cpu":
                raise ValueError(f"quantize runs int8 linear layers on CPU only, not on {self.device}")
            self.net = int8_linears(self.net, self.engine)
        task = bundle.task or {}
        self.seq_len = seq_len or task.get("seq_len") or min(512, bundle.model_config.max_len)
        if overlap is None:
            overlap = OVERLAP_ON_CPU if self.device.type == "cpu" else evaluation_overlap(self.seq_len)
        self.overlap = overlap
        # one window already keeps a CPU busy, and larger batches outgrow its caches
        # (benchmarks/classify.py, docs/speed.md); GPUs need the batch
        self.batch_size = batch_size or (32 if self.device.type == "cuda" else 1)

    def encode(self, src: MidiSource) -> Encoding:
        """Tokenize `src`, remembering what to call it in results and errors."""
        enc = self.tokenizer.encode(src)
        enc.source = describe(src)
        return enc

    def _windows(self, enc: Encoding) -> Windows:
        if self.level == "note":
            return make_windows(enc.ids, enc.note_index, length=self.seq_len, overlap=self.overlap)
        return make_windows(enc.ids, enc.note_index, length=self.seq_len, end_aligned=True)

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _features(self, enc: Encoding) -> np.ndarray | None:
        """Numbers the network reads beside the tokens: (k,) for the whole piece, (T, k) per token,
        or None."""
        return None

    @torch.inference_mode()
    def _batch(self, ids: np.ndarray, mask: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        m = torch.as_tensor(mask, device=self.device)
        x = torch.as_tensor(ids, dtype=torch.long, device=self.device)
        f = None if features is None else torch.as_tensor(features, dtype=torch.float32, device=self.device)
        with quantized_engine(self.engine) if self.engine else nullcontext():
            return self._forward(x, m, f).float().cpu().numpy()

    def _run(self, ids: np.ndarray, mask: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """What the network gives for all windows, `batch_size` at a time: (N, L, width) per token
        or (N, width) per window.

        Windows go longest first, so full windows batch together (no attention mask: SDPA's fast
        path) and each batch is cut to its longest window rather than padded to `seq_len`.
        """
        lengths = mask.sum(1)
        order = np.argsort(-lengths, kind="stable")
        token = self.level == "note"
        out = np.zeros((len(ids), ids.shape[1], self.width) if token else (len(ids), self.width), dtype=np.float32)
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            n = max(int(lengths[idx].max()), 1)
            f = None if features is None else features[idx, :n] if features.ndim == 3 else features[idx]
            p = self._batch(ids[idx, :n], mask[idx, :n], f)
            if token:
                out[idx, :n] = p
            else:
                out[idx] = p
        return out

    def _read(self, sources: list[MidiSource]) -> list[tuple[Encoding, Windows, np.ndarray]]:
        """(encoding, windows, network output per window) of each source; raises midibert.MidiError
        on the first bad file."""
        return self._read_encoded([self.encode(s) for s in sources])

    def _read_encoded(self, encs: list[Encoding]) -> list[tuple[Encoding, Windows, np.ndarray]]:
        """`_read` of pieces already tokenized (by this reader's tokenizer)."""
        wins = [self._windows(e) for e in encs]
        feats = [self._features(e) for e in encs]
        per_window = [
            None if f is None else w.take(f, fill=0) if f.ndim == 2 else np.repeat(f[None], len(w), axis=0)
            for f, w in zip(feats, wins)
        ]
        if self.engine:  # int8 activations are scaled per batch: a piece's result must not depend on its batch-mates
            out = np.concatenate([self._run(w.ids, w.attention_mask, f) for w, f in zip(wins, per_window)])
        else:
            out = self._run(
                np.concatenate([w.ids for w in wins]),
                np.concatenate([w.attention_mask for w in wins]),
                None if per_window[0] is None else np.concatenate(per_window),
            )
        bounds = np.cumsum([0] + [len(w) for w in wins])
        return [(e, w, out[a:b]) for e, w, a, b in zip(encs, wins, bounds[:-1], bounds[1:])]


class Classifier(WindowReader):
    """A fine-tuned network with its tokenizer and label names, ready to predict.

    answer: give the task's answer classes where it has them (melody: the tune, melody or bridge,
    against accompaniment), adding up the model's probabilities; False gives the model's own
    classes (melody3: melody, bridge, accompaniment), as its benchmark scores them.
    """

    def __init__(
        self,
        bundle: Bundle,
        device: str | None = None,
        seq_len: int | None = None,
        overlap: int | None = None,
        batch_size: int | None = None,
        quantize: bool | str | None = None,
        answer: bool = True,
    ):
        if bundle.task is None:
            raise ValueError(
                f"{bundle.path}: a pre-trained encoder without a task head; fine-tune it first "
                f"(python -m midibert.finetune pretrained={bundle.path}), or embed with it (midibert.embed)"
            )
        self.task = bundle.task
        self.model_classes = [bundle.id2label[i] for i in range(len(bundle.id2label))]
        self.spec: Task = of_bundle(self.task, self.model_classes)
        self.level, self.width = self.spec.level, len(self.model_classes)
        self.answer = bool(answer and self.spec.answer)
        self.class_names = self.spec.answer_classes if self.answer else self.model_classes
        self.task_name = self._task_name()
        """What the predictions answer: the bundle's task, or the registry's task of the model's own
        classes where that task answers in others (melody -> melody3)."""
        # answer class <- the model classes it adds up: (model classes, answer classes)
        self._merge = np.array(
            [
                [float(m in (self.spec.answer[a] if self.answer else (a,))) for a in self.class_names]
                for m in self.model_classes
            ]
        )
        net = build_network(self.task, bundle.model_config)
        try:
            net.load_state_dict(bundle.state_dict)
        except RuntimeError as e:
            raise ValueError(f"{bundle.path}: weights do not fit the model its config.json describes ({e})") from e
        self._setup(bundle, net, device, seq_len, overlap, batch_size, quantize)
        self.hide = hidden_families(self.task, self.tokenizer.families)
        self.key_to_c = self.tokenizer.pitch_ids() if self.task.get("key_to_c") else None

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike, *, task: str | None = None, **kwargs) -> Classifier:
        """Load a bundle (config.json, tokenizer.json, model.safetensors): a packaged model's name
        (or a task, for its default model), a bundle directory, or a Hugging Face Hub repo id.
        With `task`, a model fine-tuned for another task is refused, and a task of the model's
        family answers in its own classes (melody3: a melody model's three)."""
        bundle = load_bundle(resolve(name, task))
        trained = (bundle.task or {}).get("name")
        if task is not None and trained is not None:
            if not answers(trained, task):
                raise ValueError(f"{name} was fine-tuned for {trained!r}, not {task!r}")
            if task != trained:  # a task of the model's family answers in the model's own classes
                kwargs.setdefault("answer", False)
        return cls(bundle, **kwargs)

    def _task_name(self) -> str:
        """What the predictions answer: the bundle's task, or, in the model's own classes where that
        task answers in others, the registry's task with those classes (melody -> melody3)."""
        if self.answer or not self.spec.answer:
            return self.spec.name
        same = [
            t.name for t in REGISTRY.values() if t.family == self.spec.name and list(t.classes) == self.model_classes
        ]
        return same[0] if same else self.spec.name

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write this classifier as a bundle that `from_pretrained` reads back exactly."""
        return save_bundle(
            path,
            self.bundle.state_dict,
            self.bundle.model_config,
            self.tokenizer,
            task=self.task,
            id2label=self.bundle.id2label,
        )

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        """Class probabilities of a batch of windows: (B, L, C) per token or (B, C) per window."""
        x = network_input(ids, mask, self.hide, self.key_to_c)
        return (self.net(x, mask) if features is None else self.net(x, mask, features)).float().softmax(-1)

    def _features(self, enc: Encoding) -> np.ndarray | None:
        """The rules' answers per token, or the piece's note statistics standardized as in
        training, for a head that reads them."""
        if self.task.get("note_features"):
            from midibert.baselines import note_features

            return note_features(self.tokenizer, enc.ids, self.task["note_features"])
        norm = self.task.get("features")
        if not norm:
            return None
        from midibert.baselines import note_statistics

        x = note_statistics(enc.notes, self.tokenizer.config.resolution, velocity=norm["velocity"])
        return ((x - np.asarray(norm["mean"])) / np.asarray(norm["scale"])).astype(np.float32)

    def _result(self, enc: Encoding, probs: np.ndarray, windows: Windows) -> Prediction:
        """Window probabilities -> one row per note (file order) or one per piece."""
        names, task, caveats = self.class_names, self.task_name, self._caveats(enc)
        if self.level == "piece":
            p = probs.mean(0) @ self._merge
            return Prediction(enc.source or "", task, "piece", names, names[int(p.argmax())], p, enc, caveats)
        _, note_ids, note_probs = aggregate_notes(probs, windows.note_index, np.zeros(len(windows), dtype=np.int64))
        per_note = np.full((len(enc.notes), len(names)), np.nan)
        per_note[note_ids] = note_probs @ self._merge
        per_note = per_note[np.argsort(enc.notes.source_index, kind="stable")]  # into the file's order
        best = np.nan_to_num(per_note, nan=-1).argmax(1)
        labels = [names[i] if not np.isnan(p[0]) else "" for i, p in zip(best, per_note)]  # "" = dropped note
        return Prediction(enc.source or "", task, "note", names, labels, per_note, enc, caveats)

    def _caveats(self, enc: Encoding) -> tuple[str, ...]:
        """A model that reads velocity, given a file whose velocities look entered, not played."""
        families = self.tokenizer.families
        if "Velocity" not in families or families.index("Velocity") in self.hide:
            return ()
        n = len(np.unique(enc.notes.velocity[np.asarray(enc.notes.tokenized, dtype=bool)]))
        if not 0 < n < ENTERED_VELOCITIES:
            return ()
        return (
            f"{n} distinct velocit{'y' if n == 1 else 'ies'}: the file looks entered, not played, and this model "
            "reads velocity as played loudness (its answer may follow that loudness)",
        )

    def predict(self, src: MidiSource) -> Prediction:
        """Labels for one piece (every note of a note-level task gets exactly one)."""
        return self.predict_batch([src])[0]

    def predict_batch(self, sources: list[MidiSource]) -> list[Prediction]:
        """Windows of all pieces batched together; raises midibert.MidiError on the first bad file."""
        return [self._result(e, probs, w) for e, w, probs in self._read(sources)] if sources else []


@lru_cache(maxsize=4)
def _cached(path: str, task: str) -> Classifier:
    return Classifier.from_pretrained(path, task=task)


def _task(task: str, src: MidiSource, model: str | os.PathLike | None) -> Prediction:
    # keyed by the directory a name resolves to, so a name never returns a stale model
    return _cached(str(resolve(model or default_model(task), task)), task).predict(src)


def melody(src: MidiSource, model: str | os.PathLike | None = None) -> Prediction:
    """Melody (the tune) or accompaniment per note; `model` defaults to the packaged melody model."""
    return _task("melody", src, model)


def melody3(src: MidiSource, model: str | os.PathLike | None = None) -> Prediction:
    """POP909's three classes per note, melody / bridge / accompaniment, from the melody model."""
    return _task("melody3", src, model)


def velocity(src: MidiSource, model: str | os.PathLike | None = None) -> Prediction:
    """Velocity bin per note; `model` defaults to the packaged velocity model."""
    return _task("velocity", src, model)


def style(src: MidiSource, model: str | os.PathLike | None = None) -> Prediction:
    """Composer / style of the piece; `model` defaults to the packaged style model."""
    return _task("style", src, model)


def emotion(src: MidiSource, model: str | os.PathLike | None = None) -> Prediction:
    """Emotion quadrant (Q1..Q4) of the piece; `model` defaults to the packaged emotion model."""
    return _task("emotion", src, model)
