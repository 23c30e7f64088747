"""The network a fine-tuning task describes: a MidiBert encoder with a head, or a BiLSTM baseline,
and what it reads: the token families the task hides from its input, and whether it reads every
window moved into C.

Training (`midibert.finetune`) and inference (`midibert.classify`) both build it from the same
`task` dict a bundle stores, so a bundle loads into exactly the network that was trained, and
both prepare its input with `network_input`. Plain PyTorch: nothing here imports Lightning.
"""

from __future__ import annotations

import torch

from midibert.baselines import BiLSTMSequenceClassifier, BiLSTMTokenClassifier
from midibert.heads import SequenceClassifier, TokenClassifier
from midibert.model import BertConfig, MidiBert
from midibert.tasks import level
from midibert.tokenize.base import MASK
from midibert.transpose import normalize_key


def hidden_families(task: dict, families: list[str]) -> list[int]:
    """Indices of the families a task hides (its "hide_families" names that the tokens have)."""
    return [families.index(f) for f in task.get("hide_families") or [] if f in families]


def hide_families(input_ids: torch.Tensor, attention_mask: torch.Tensor, hidden: list[int]) -> torch.Tensor:
    """`input_ids` (B, L, F) with the `hidden` families set to MASK on real tokens, so a task never
    sees its own target (velocity prediction on performance tokens hides Velocity)."""
    if not hidden:
        return input_ids
    ids = input_ids.clone()
    ids[..., hidden] = torch.where(attention_mask.bool()[..., None], MASK, ids[..., hidden])
    return ids


def network_input(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, hidden: list[int], key_to_c: tuple | None = None
) -> torch.Tensor:
    """What a task's network reads: each window moved so its most used pitch class is C where the
    task says so (`key_to_c`: the tokenizer's `pitch_ids`; `transpose.normalize_key`), and the
    `hidden` families masked (`hide_families`)."""
    if key_to_c is not None:
        input_ids = normalize_key(input_ids, attention_mask, key_to_c)
    return hide_families(input_ids, attention_mask, hidden)


def build_network(task: dict, model_config: BertConfig, encoder_state: dict | None = None) -> torch.nn.Module:
    """The network a task trains: BERT encoder + head ("bert") or a BiLSTM of the paper's size ("rnn").

    task: {"level": "note"|"piece", "num_classes": int, "arch": "bert"|"rnn", "head": {...}} (bundles
    made before the task registry say "token"|"sequence").
    """
    head = dict(task.get("head") or {})
    token = level(task["level"]) == "note"
    if task["arch"] == "rnn":
        cls = BiLSTMTokenClassifier if token else BiLSTMSequenceClassifier
        return cls(model_config, task["num_classes"], **head)
    encoder = MidiBert(model_config)
    if encoder_state is not None:
        missing, unexpected = encoder.load_state_dict(encoder_state, strict=False)
        if missing:
            raise ValueError(
                f"pre-trained weights lack {len(missing)} encoder tensors, e.g. {missing[:3]}: "
                "the bundle was made for another model configuration"
            )
    cls = TokenClassifier if token else SequenceClassifier
    return cls(encoder, task["num_classes"], **head)
