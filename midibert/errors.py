"""Errors the library raises on bad input."""


class MidiError(ValueError):
    """A MIDI source could not be read or holds nothing to tokenize.

    The message always names the file (or the kind of in-memory object) and the cause.
    """
