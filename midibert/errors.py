"""Errors the library raises on bad input."""


class MidiError(ValueError):
    """A MIDI source could not be read or holds nothing to tokenize.

    The message always names the file (or the kind of in-memory object) and the cause.
    """


# What bad input, a bad path or a bad setting raises (MidiError, FileNotFoundError, a refused
# bundle, archive or config ...): reported on one line naming the cause, exit status 2. Anything
# else is a bug, reported as one.
USER_ERRORS = (ValueError, OSError)
