"""Embeddings of MIDI files from a pre-trained encoder: one vector per piece, or one row per note.

    import midibert
    v = midibert.embed("song.mid")                        # (hidden,) from the packaged score encoder
    m = midibert.embed(["a.mid", "b.mid"])                # (2, hidden)
    notes = midibert.embed("song.mid", level="note")      # (n_notes, hidden), the file's note order
    midibert.embed("song.mid", model="runs/pretrain/score/bundle")   # any bundle, or a Hub id

Pieces are cut into windows as `midibert.classify` cuts them. A note's row averages the encoder's
last layer over its tokens (over every window that holds it); a piece's vector averages its
windows' mean over real tokens. A fine-tuned bundle lends its encoder (its head is not used).
Plain PyTorch: nothing here imports Lightning, scikit-learn or matplotlib.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import torch

from midibert.bundle import Bundle, load_bundle
from midibert.classify import WindowReader
from midibert.model import MidiBert
from midibert.pretrained import default_encoder, resolve
from midibert.tokenize import Encoding
from midibert.tokenize.notes import MidiSource
from midibert.tokenize.windows import Windows, aggregate_notes

LEVELS = ("piece", "note")


def encoder_state(bundle: Bundle) -> dict[str, torch.Tensor]:
    """The encoder's weights of a pre-trained bundle, or of a fine-tuned BERT's (its `encoder.*`)."""
    if bundle.task is None:
        return bundle.state_dict
    prefix = "encoder."
    state = {k[len(prefix) :]: v for k, v in bundle.state_dict.items() if k.startswith(prefix)}
    if not state:
        raise ValueError(f"{bundle.path}: a {bundle.task.get('arch', '?')} model has no BERT encoder to embed with")
    return state


class Embedder(WindowReader):
    """An encoder with its tokenizer, ready to embed pieces or notes (`level`)."""

    def __init__(
        self,
        bundle: Bundle,
        level: str = "piece",
        device: str | None = None,
        seq_len: int | None = None,
        overlap: int | None = None,
        batch_size: int | None = None,
        quantize: bool | str | None = None,
    ):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        self.level, self.width = level, bundle.model_config.hidden
        net = MidiBert(bundle.model_config)
        try:
            net.load_state_dict(encoder_state(bundle))
        except RuntimeError as e:
            raise ValueError(f"{bundle.path}: weights do not fit the encoder its config.json describes ({e})") from e
        self._setup(bundle, net, device, seq_len, overlap, batch_size, quantize)

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike | None = None, **kwargs) -> Embedder:
        """A packaged encoder's name (None: the packaged score encoder), a bundle directory (a
        pre-trained encoder, or a fine-tuned BERT whose encoder is used), or a Hub repo id."""
        return cls(load_bundle(resolve(name or default_encoder())), **kwargs)

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        h = self.net(ids, mask)  # (B, L, H)
        if self.level == "note":
            return h
        m = mask[..., None].to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp_min(1)

    def _vectors(self, enc: Encoding, out: np.ndarray, windows: Windows) -> np.ndarray:
        if self.level == "piece":
            return out.mean(0)
        _, note_ids, mean = aggregate_notes(out, windows.note_index, np.zeros(len(windows), dtype=np.int64))
        rows = np.full((len(enc.notes), self.width), np.nan, dtype=np.float32)  # NaN: a note the tokenizer dropped
        rows[note_ids] = mean
        return rows[np.argsort(enc.notes.source_index, kind="stable")]  # into the file's order

    def embed(self, sources: list[MidiSource]) -> list[np.ndarray]:
        """One (hidden,) vector or (n_notes, hidden) array per source; raises midibert.MidiError on
        the first bad file."""
        return self.embed_encoded([self.encode(s) for s in sources])

    def embed_encoded(self, encs: list[Encoding]) -> list[np.ndarray]:
        """`embed` of pieces already tokenized by this embedder's tokenizer."""
        return [self._vectors(e, out, w) for e, w, out in self._read_encoded(encs)] if encs else []


@lru_cache(maxsize=4)
def _cached(path: str, level: str) -> Embedder:
    return Embedder.from_pretrained(path, level=level)


def embed(
    src: MidiSource | list[MidiSource], model: str | os.PathLike | None = None, level: str = "piece"
) -> np.ndarray | list[np.ndarray]:
    """Embeddings of one source or a list of them, from `model` (a packaged encoder, a bundle
    directory or a Hub id; None: the packaged score encoder).

    level="piece": one vector per piece, (hidden,) for one source, (n, hidden) for a list.
    level="note": one row per note in the file's order, (n_notes, hidden) for one source, a list
    of such arrays for a list (rows of notes the tokenizer dropped are NaN).
    """
    embedder = _cached(str(resolve(model or default_encoder())), level)
    many = isinstance(src, (list, tuple))
    out = embedder.embed(list(src) if many else [src])
    if not many:
        return out[0]
    return np.stack(out) if level == "piece" and out else out
