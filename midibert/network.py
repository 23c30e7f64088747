"""The network a fine-tuning task describes: a MidiBert encoder with a head, or a BiLSTM baseline.

Training (`midibert.finetune`) and inference (`midibert.classify`) both build it from the same
`task` dict a bundle stores, so a bundle loads into exactly the network that was trained. Plain
PyTorch: nothing here imports Lightning.
"""

from __future__ import annotations

import torch

from midibert.baselines import BiLSTMSequenceClassifier, BiLSTMTokenClassifier
from midibert.heads import SequenceClassifier, TokenClassifier
from midibert.model import BertConfig, MidiBert


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
