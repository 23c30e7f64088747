"""midibert: BERT-like pre-training for symbolic piano music (MidiBERT-Piano, reproduced).

Importing the package is cheap: torch and Lightning load only in the modules that train or infer.
"""
from midibert.errors import MidiError

__version__ = "0.1.0"
__all__ = ["MidiError", "__version__"]
