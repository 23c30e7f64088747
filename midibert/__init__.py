"""midibert: BERT-like pre-training for symbolic piano music (MidiBERT-Piano, reproduced).

    from midibert import Classifier, MidiError, Tokenizer, embed

Importing the package is cheap: `Tokenizer` (numpy, symusic) and `Classifier` (torch) load on
first use, so `midibert --help` and `midibert tokenize` never pay for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from midibert.errors import MidiError

if TYPE_CHECKING:
    from midibert.classify import Classifier
    from midibert.embedding import embed
    from midibert.tokenize import Tokenizer

__version__ = "0.1.0"
__all__ = ["Classifier", "MidiError", "Tokenizer", "__version__", "embed"]

_LAZY = {"Classifier": "midibert.classify", "Tokenizer": "midibert.tokenize", "embed": "midibert.embedding"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'midibert' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
