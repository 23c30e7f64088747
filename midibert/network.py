"""The network a fine-tuning task describes: a MidiBert encoder with a head, or a BiLSTM baseline,
and the token families the task hides from its input.

Training (`midibert.finetune`) and inference (`midibert.classify`) both build it from the same
`task` dict a bundle stores, so a bundle loads into exactly the network that was trained, and
both hide families with `hide_families`. Plain PyTorch: nothing here imports Lightning.
"""

from __future__ import annotations

import torch

from midibert.baselines import BiLSTMSequenceClassifier, BiLSTMTokenClassifier
from midibert.heads import SequenceClassifier, TokenClassifier
from midibert.model import BertConfig, MidiBert
from midibert.tokenize.base import MASK


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


def build_network(task: dict, model_config: BertConfig, encoder_state: dict | None = None) -> torch.nn.Module:
    """The network a task trains: BERT encoder + head ("bert") or a BiLSTM of the paper's size ("rnn").

    task: {"level": "token"|"sequence", "num_classes": int, "arch": "bert"|"rnn", "head": {...}}.
    """
    head = dict(task.get("head") or {})
    token = task["level"] == "token"
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
