"""A saved model: a directory with config.json, tokenizer.json and model.safetensors (and, for a
pre-trained encoder, its masked-LM head in mlm_head.safetensors).

Loading never unpickles anything (weights are safetensors, the rest JSON) and refuses a bundle
whose tokenizer does not fit its model, or one written by a newer midibert. Weights may be
stored compactly (fp16, or int8 with one scale per row for the large matrices) to keep shipped
bundles small; they always load back as fp32, so computation is the same code either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import midibert
from midibert.fsutil import ordinary_permissions, publish_dir
from midibert.model import BertConfig
from midibert.tokenize import Tokenizer, TokenizerConfig

FORMAT_VERSION = 2  # 2: compact weights (fp16 / int8 + scales); fp32 bundles still say 1 so older readers take them
CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE = "config.json", "model.safetensors", "tokenizer.json"
# A pre-trained encoder's bundle also keeps the masked-LM head it was trained with, so that
# pre-training can go on from it (`init_from`) without learning a head from nothing; readers of
# the encoder never open it.
HEAD_FILE = "mlm_head.safetensors"
CARD_FILE = "MODEL_CARD.md"
WEIGHT_FORMATS = ("fp32", "fp16", "int8", "int4")
# An int8 matrix's per-row scales are stored beside it under this suffix: module attribute names
# cannot contain "#", so it never collides with a real parameter.
SCALE_SUFFIX = "#scale"
# Matrices smaller than this stay fp16 under int8: quantizing them saves next to nothing and the
# small ones (classifier outputs, relative-position biases) are where rounding shows most.
INT8_MIN_NUMEL = 4096
# int4: one scale per row and group of this many columns (finer than a row's, as 15 levels are
# few); two values a byte. A matrix whose width is not a multiple of it stays int8.
INT4_GROUP = 32


@dataclass
class Bundle:
    """What a bundle directory holds. `task` is None for a pre-trained encoder."""

    path: Path
    model_config: BertConfig
    tokenizer: Tokenizer
    state_dict: dict[str, torch.Tensor]
    task: dict | None
    id2label: dict[int, str]

    def encoder_state(self) -> dict[str, torch.Tensor]:
        """The encoder's weights: all of a pre-trained encoder's, a fine-tuned model's less its head
        (what a fine-tuning that starts from either reads)."""
        if self.task is None:
            return self.state_dict
        return {k.removeprefix("encoder."): v for k, v in self.state_dict.items() if k.startswith("encoder.")}


def compact_state(state: dict[str, torch.Tensor], weights: str) -> dict[str, torch.Tensor]:
    """`state` as stored: "fp32" unchanged, "fp16" halves every float tensor, "int8" also rounds each
    large matrix (linear weights, embedding tables) to int8 with one fp32 scale per row, "int4" to
    4 bits with a scale per row and group of INT4_GROUP columns (packed two a byte; the packaged
    encoders, whose weights start a fine-tuning or make embeddings)."""
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights must be one of {WEIGHT_FORMATS}, not {weights!r}")
    if weights == "fp32":
        return dict(state)
    out = {}
    for key, t in state.items():
        if not t.is_floating_point():
            out[key] = t
        elif weights == "int4" and t.dim() == 2 and t.numel() >= INT8_MIN_NUMEL and t.shape[1] % INT4_GROUP == 0:
            g = t.float().reshape(t.shape[0], -1, INT4_GROUP)
            scale = g.abs().amax(2).clamp_min(1e-12) / 7
            q = (torch.round(g / scale[..., None]).clamp(-7, 7) + 8).to(torch.uint8).reshape(t.shape[0], -1)
            out[key] = q[:, 0::2] | (q[:, 1::2] << 4)
            out[key + SCALE_SUFFIX] = scale.half()
        elif weights in ("int8", "int4") and t.dim() == 2 and t.numel() >= INT8_MIN_NUMEL:
            scale = t.float().abs().amax(1).clamp_min(1e-12) / 127
            out[key] = torch.round(t.float() / scale[:, None]).clamp(-127, 127).to(torch.int8)
            out[key + SCALE_SUFFIX] = scale
        else:
            out[key] = t.half()
    return out


def expand_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fp32 state dict a stored one (any of WEIGHT_FORMATS) stands for."""
    out = {}
    for key, t in state.items():
        if key.endswith(SCALE_SUFFIX):
            if key[: -len(SCALE_SUFFIX)] not in state:
                raise ValueError(f"int8 scales {key!r} without their matrix")
        elif key + SCALE_SUFFIX in state and t.dtype == torch.uint8:  # int4: two values a byte
            scale = state[key + SCALE_SUFFIX].float()
            q = torch.stack([t & 15, t >> 4], dim=2).reshape(t.shape[0], -1).float() - 8
            out[key] = (q.reshape(*scale.shape, -1) * scale[..., None]).reshape(t.shape[0], -1)
        elif key + SCALE_SUFFIX in state:
            out[key] = t.float() * state[key + SCALE_SUFFIX].float()[:, None]
        else:
            out[key] = t.float() if t.is_floating_point() else t
    return out


def save_bundle(
    directory: str | os.PathLike,
    module: torch.nn.Module | dict[str, torch.Tensor],
    model_config: BertConfig,
    tokenizer: Tokenizer,
    task: dict | None = None,
    id2label: dict[int, str] | None = None,
    *,
    weights: str = "fp32",
    mlm_head: torch.nn.Module | dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write `module`'s weights (or a state dict) with its configs, stored as `weights` (see
    `compact_state`), and a pre-trained encoder's `mlm_head` beside them (HEAD_FILE, fp32); the
    directory appears only once complete.

    An existing bundle there is replaced; any other non-empty directory is refused, never deleted.
    """
    state = module.state_dict() if isinstance(module, torch.nn.Module) else module
    state = compact_state(_on_cpu(state), weights)
    directory = Path(directory)
    if directory.is_dir() and any(directory.iterdir()) and not (directory / CONFIG_FILE).is_file():
        raise ValueError(f"{directory}: not empty and not a midibert bundle (no {CONFIG_FILE}); refusing to replace it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    config = {
        "format_version": FORMAT_VERSION if weights != "fp32" else 1,
        "midibert_version": midibert.__version__,
        "model": model_config.to_dict(),
        "task": task,
        "id2label": {str(k): v for k, v in (id2label or {}).items()},
        "tokenizer": tokenizer.to_dict()["config"],
    }
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    tokenizer.save(tmp)
    save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "midibert_weights": weights})
    if mlm_head is not None:  # stored as the encoder's weights are
        head = mlm_head.state_dict() if isinstance(mlm_head, torch.nn.Module) else mlm_head
        save_file(compact_state(_on_cpu(head), weights), str(tmp / HEAD_FILE))
    ordinary_permissions(tmp)  # mkdtemp made it private; a finished bundle is shared like any folder
    publish_dir(tmp, directory)
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
        raise ValueError(
            f"{directory}: bundle format {version} is newer than this midibert reads "
            f"({FORMAT_VERSION}); upgrade midibert"
        )
    try:
        tokenizer = Tokenizer.load(directory)
    except ValueError as e:
        raise ValueError(f"{directory}: {e}") from e
    model_config = BertConfig.from_dict(config["model"])
    if tokenizer.config != TokenizerConfig.from_dict(config["tokenizer"]):
        raise ValueError(
            f"{directory}: tokenizer.json does not match the tokenizer the model was trained with "
            f"(config.json); was one of them replaced?"
        )
    if list(model_config.vocab_sizes) != tokenizer.vocab_sizes:
        raise ValueError(
            f"{directory}: model vocabulary sizes {list(model_config.vocab_sizes)} do not match the "
            f"tokenizer's {tokenizer.vocab_sizes}"
        )
    stored = _read_weights(directory / WEIGHTS_FILE)
    try:
        state = expand_state(stored)
    except ValueError as e:  # int8 scales without their matrix
        raise ValueError(f"{directory / WEIGHTS_FILE}: {e}") from e
    id2label = {int(k): v for k, v in config.get("id2label", {}).items()}
    task = config.get("task")
    if task is not None and sorted(id2label) != list(range(task.get("num_classes", -1))):
        raise ValueError(
            f"{directory / CONFIG_FILE}: id2label names classes {sorted(id2label)}, but the task "
            f"head has {task.get('num_classes')} (0..{task.get('num_classes', 0) - 1})"
        )
    return Bundle(directory, model_config, tokenizer, state, task, id2label)


def weights_digest(directory: str | os.PathLike) -> str:
    """The sha256 of a bundle's weights file: names the very model a measurement made outside its
    export was made on, so the measurement cannot be attached to another."""
    return hashlib.sha256((Path(directory) / WEIGHTS_FILE).read_bytes()).hexdigest()


def load_mlm_head(directory: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    """The masked-LM head saved beside a pre-trained encoder, or None where the bundle has none."""
    path = Path(directory) / HEAD_FILE
    return expand_state(_read_weights(path)) if path.is_file() else None


def _on_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except SafetensorError as e:  # truncated, or not safetensors at all (a pickle renamed, ...)
        raise ValueError(
            f"{path}: not a readable safetensors file ({e}); the bundle is damaged or was not written by midibert"
        ) from e
