"""Where a model comes from: a name shipped with the package, a bundle directory, or a Hugging
Face Hub repository.

    resolve("melody")                          # the packaged default model for a task
    resolve("midibert-small-melody")           # a packaged model by its full name
    resolve("runs/run/demo/melody-bert/bundle")  # any bundle directory
    resolve("someone/their-model")             # a Hub repo id, through huggingface_hub's cache

Packaged models live in `midibert/models/<name>/`, listed in `midibert/models/index.json`, which
`python -m midibert.release` writes together with the bundles; `$MIDIBERT_MODELS` points at
another such folder instead. No torch here: `midibert models` lists them instantly.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from midibert.tasks import answers

INDEX_FILE = "index.json"
# What a bundle is made of: only these are fetched from the Hub (a repo may hold much else).
HUB_FILES = ["config.json", "tokenizer.json", "model.safetensors", "MODEL_CARD.md", "README.md"]
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def models_dir() -> Path:
    """The folder of packaged models: $MIDIBERT_MODELS, else the one installed with midibert."""
    return Path(os.environ.get("MIDIBERT_MODELS") or Path(__file__).parent / "models")


def packaged(folder: str | os.PathLike | None = None) -> dict[str, dict]:
    """Packaged model name -> its index entry (task, size, data, licence, test scores, ...)."""
    index = Path(folder or models_dir()) / INDEX_FILE
    if not index.is_file():
        return {}
    try:
        return json.loads(index.read_text())["models"]
    except (ValueError, KeyError) as e:
        raise ValueError(f"{index}: not a model index ({e})") from e


def default_model(task: str) -> str:
    """The name of the packaged model `task` uses when none is given."""
    models = packaged()
    mine = {n: m for n, m in models.items() if answers(m["task"], task)}  # melody3: the melody model
    exact = {n: m for n, m in mine.items() if m["task"] == task} or mine
    names = [n for n, m in exact.items() if m.get("default")] or sorted(exact)
    if not names:
        shipped = ", ".join(sorted({m["task"] for m in models.values()})) or "none"
        raise ValueError(
            f"no packaged {task} model in this installation (packaged tasks: {shipped}); "
            f"give a bundle directory or Hub repo id as the model"
        )
    return names[0]


ENCODER = "encoder"  # the index's task of a packaged pre-trained encoder (no head)


def default_encoder(kind: str = "score") -> str:
    """The name of the packaged pre-trained encoder of token `kind` ("score" or "performance")."""
    names = sorted(n for n, m in packaged().items() if m["task"] == ENCODER and m.get("kind", "score") == kind)
    if not names:
        raise ValueError(
            f"no packaged {kind} encoder in this installation; give a bundle directory or Hub repo id as the model"
        )
    return names[0]


def resolve(name: str | os.PathLike, task: str | None = None) -> Path:
    """The bundle directory `name` stands for: a directory as given, else a packaged model (a full
    name, or a task for its default), else a Hub repo id. A packaged model of another task than
    `task` is refused; for the others the task is known only once loaded (Classifier checks it)."""
    path = Path(name)
    if path.is_dir():
        return path
    name = str(name)
    models = packaged()
    if name not in models and any(answers(m["task"], name) for m in models.values()):
        name = default_model(name)
    if name in models:
        if task is not None and not answers(models[name]["task"], task):
            raise ValueError(
                f"{name} is a packaged {models[name]['task']} model, not a {task} one "
                f"(the packaged {task} model: see `midibert models`)"
            )
        found = models_dir() / models[name].get("path", name)
        if not found.is_dir():
            raise ValueError(
                f"{name}: listed in {models_dir() / INDEX_FILE} but {found} is missing; reinstall midibert"
            )
        return found
    if REPO_ID.match(name):
        return _from_hub(name)
    known = ", ".join(sorted(models)) or "none in this installation"
    raise ValueError(f"{name}: no such bundle directory, packaged model ({known}) or Hugging Face repo id (org/name)")


def _from_hub(repo_id: str) -> Path:
    """A Hub repo's bundle files through huggingface_hub's cache ($HF_HUB_CACHE), which honours
    $HF_HUB_OFFLINE: offline, a cached snapshot is used and nothing else is tried."""
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError as e:
        raise ValueError(
            f"{repo_id}: not a local directory; loading from the Hugging Face Hub needs "
            f"`pip install huggingface_hub` ({e})"
        ) from e
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))
    except RepositoryNotFoundError as e:
        raise ValueError(f"{repo_id}: no such directory here, and no such model on the Hugging Face Hub") from e
    except LocalEntryNotFoundError as e:
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub could not be reached"
        raise ValueError(
            f"{repo_id}: no such directory here, and not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) while {why}"
        ) from e
    except HfHubHTTPError as e:
        raise ValueError(f"{repo_id}: the Hugging Face Hub refused it: {str(e).splitlines()[0]}") from e
