"""Errors the library raises on bad input, and how entry points tell them from bugs."""

from __future__ import annotations

import sys
from importlib.util import find_spec

# what each extra of setup.cfg adds, by the module name it is imported as -> its package's name
EXTRAS = {
    "train": {
        "pytorch_lightning": "pytorch-lightning",
        "hydra": "hydra-core",
        "omegaconf": "omegaconf",
        "wandb": "wandb",
        "sklearn": "scikit-learn",
        "matplotlib": "matplotlib",
    },
}


class MissingExtra(ImportError):
    """A command needs packages that `pip install midibert` leaves out (inference needs none of them)."""


# imported only by the option that uses it (logger=wandb), which asks for it itself: a training
# run logging elsewhere does not need it
ON_DEMAND = {"wandb"}


def require_extra(extra: str, *, main: bool = False, modules: tuple[str, ...] | None = None) -> None:
    """Refuse, in one line, to go on without the packages of `extra` (all but ON_DEMAND's, or just
    `modules`): raise MissingExtra, or, in a module run as a program (`main`), print the line and
    exit with status 2."""
    wanted = modules or [m for m in EXTRAS[extra] if m not in ON_DEMAND]
    missing = [EXTRAS[extra][m] for m in wanted if find_spec(m) is None]
    if not missing:
        return
    message = f'this needs midibert\'s {extra} extra: pip install "midibert[{extra}]" (missing: {", ".join(missing)})'
    if main:
        print(f"midibert: error: {message}", file=sys.stderr)
        sys.exit(2)
    raise MissingExtra(message)


class MidiError(ValueError):
    """A MIDI source could not be read or holds nothing to tokenize.

    The message always names the file (or the kind of in-memory object) and the cause.
    """


# What bad input, a bad path or a bad setting raises (MidiError, FileNotFoundError, a refused
# bundle, archive or config ...): reported on one line naming the cause, exit status 2. Anything
# else is a bug, reported as one.
USER_ERRORS = (ValueError, OSError, MissingExtra)


def user_errors() -> tuple[type[BaseException], ...]:
    """USER_ERRORS, plus Hydra's and OmegaConf's (a bad override, a missing value) once those
    libraries are loaded: nothing raises them before, and importing them only to name their
    exceptions would slow down every command."""
    extra: list[type[BaseException]] = []
    if "hydra" in sys.modules:
        from hydra.errors import HydraException

        extra.append(HydraException)
    if "omegaconf" in sys.modules:
        from omegaconf.errors import OmegaConfBaseException

        extra.append(OmegaConfBaseException)
    return USER_ERRORS + tuple(extra)


def one_line(e: BaseException) -> str:
    """The message of `e` on one line. Hydra's spans sentences on several lines; OmegaConf's
    (raised directly, or as the cause of Hydra's) adds lines of key and type details after a
    first line that already names the key: only that first line is kept."""

    def lines(x: BaseException) -> list[str]:
        return [line.strip() for line in str(x).splitlines() if line.strip()]

    def omegaconf(x: BaseException) -> bool:
        return type(x).__module__.startswith("omegaconf")

    text = " ".join(lines(e)[:1] if omegaconf(e) else lines(e)) or type(e).__name__
    if e.__cause__ is not None and omegaconf(e.__cause__) and lines(e.__cause__):
        text += f" ({lines(e.__cause__)[0]})"
    return text
