"""A saved model: a directory with config.json, tokenizer.json and model.safetensors.

Loading never unpickles anything (weights are safetensors, the rest JSON) and refuses a bundle
whose tokenizer does not fit its model, or one written by a newer midibert.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import midibert
from midibert.fsutil import ordinary_permissions
from midibert.model import BertConfig
from midibert.tokenize import Tokenizer, TokenizerConfig

FORMAT_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE = "config.json", "model.safetensors", "tokenizer.json"


@dataclass
class Bundle:
    """What a bundle directory holds. `task` is None for a pre-trained encoder."""

    path: Path
    model_config: BertConfig
    tokenizer: Tokenizer
    state_dict: dict[str, torch.Tensor]
    task: dict | None
    id2label: dict[int, str]


def save_bundle(directory: str | os.PathLike, module: torch.nn.Module, model_config: BertConfig,
                tokenizer: Tokenizer, task: dict | None = None, id2label: dict[int, str] | None = None) -> Path:
    """Write `module`'s weights with its configs; the directory appears only once complete.

    An existing bundle there is replaced; any other non-empty directory is refused, never deleted.
    """
    directory = Path(directory)
    if directory.is_dir() and any(directory.iterdir()) and not (directory / CONFIG_FILE).is_file():
        raise ValueError(f"{directory}: not empty and not a midibert bundle (no {CONFIG_FILE}); "
                         f"refusing to replace it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    config = {
        "format_version": FORMAT_VERSION,
        "midibert_version": midibert.__version__,
        "model": model_config.to_dict(),
        "task": task,
        "id2label": {str(k): v for k, v in (id2label or {}).items()},
        "tokenizer": tokenizer.to_dict()["config"],
    }
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    tokenizer.save(tmp)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
    ordinary_permissions(tmp)  # mkdtemp made it private; a finished bundle is shared like any folder
    if directory.exists():  # replace an older bundle without ever leaving a half-written one
        old = directory.with_name(f".{directory.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, directory)
    return directory


def load_bundle(directory: str | os.PathLike) -> Bundle:
    """Read a bundle, checking its format version and that tokenizer and model agree."""
    directory = Path(directory)
    for name in (CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise ValueError(f"{directory}: not a midibert bundle (missing {name})")
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
    except ValueError as e:
        raise ValueError(f"{directory / CONFIG_FILE}: not valid JSON ({e})") from e
    version = config.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise ValueError(f"{directory}: bundle format {version} is newer than this midibert reads "
                         f"({FORMAT_VERSION}); upgrade midibert")
    try:
        tokenizer = Tokenizer.load(directory)
    except ValueError as e:
        raise ValueError(f"{directory}: {e}") from e
    model_config = BertConfig.from_dict(config["model"])
    if tokenizer.config != TokenizerConfig.from_dict(config["tokenizer"]):
        raise ValueError(f"{directory}: tokenizer.json does not match the tokenizer the model was trained with "
                         f"(config.json); was one of them replaced?")
    if list(model_config.vocab_sizes) != tokenizer.vocab_sizes:
        raise ValueError(f"{directory}: model vocabulary sizes {list(model_config.vocab_sizes)} do not match the "
                         f"tokenizer's {tokenizer.vocab_sizes}")
    try:
        state = load_file(str(directory / WEIGHTS_FILE))
    except SafetensorError as e:  # truncated, or not safetensors at all (a pickle renamed, ...)
        raise ValueError(f"{directory / WEIGHTS_FILE}: not a readable safetensors file ({e}); "
                         f"the bundle is damaged or was not written by midibert") from e
    id2label = {int(k): v for k, v in config.get("id2label", {}).items()}
    task = config.get("task")
    if task is not None and sorted(id2label) != list(range(task.get("num_classes", -1))):
        raise ValueError(f"{directory / CONFIG_FILE}: id2label names classes {sorted(id2label)}, but the task "
                         f"head has {task.get('num_classes')} (0..{task.get('num_classes', 0) - 1})")
    return Bundle(directory, model_config, tokenizer, state, task, id2label)
