"""MIDI -> tokens whose every token stays tied to the note it came from.

from midibert.tokenize import Tokenizer
tok = Tokenizer.create("cp", kind="score")   # "cp" | "remi"; "score" | "performance"
enc = tok.encode("song.mid")                  # enc.ids, enc.note_index, enc.notes
tok.decode(enc.ids).dump_midi("back.mid")
"""

from midibert.tokenize.base import MASK, NONE, PAD, SPECIALS, Encoding, Tokenizer
from midibert.tokenize.config import TokenizerConfig
from midibert.tokenize.cp import CPTokenizer
from midibert.tokenize.labels import IGNORE
from midibert.tokenize.notes import Notes
from midibert.tokenize.remi import REMITokenizer

__all__ = [
    "Tokenizer",
    "TokenizerConfig",
    "Encoding",
    "Notes",
    "CPTokenizer",
    "REMITokenizer",
    "PAD",
    "MASK",
    "NONE",
    "SPECIALS",
    "IGNORE",
]
