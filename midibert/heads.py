"""Fine-tuning heads on a MidiBert encoder: per-token (melody, velocity) and per-piece
(composer, emotion) classifiers, plus layer-wise learning-rate decay.

    bundle = load_bundle("runs/pretrain/smoke/bundle")   # midibert.bundle: a pre-trained encoder
    encoder = MidiBert(bundle.model_config)
    encoder.load_state_dict(bundle.state_dict)
    clf = SequenceClassifier(encoder, num_classes=8)
    logits = clf(input_ids, attention_mask)             # (B, 8)

`midibert.network.build_network` does this from a fine-tuning task's description.

Both heads return logits; class weights for imbalanced labels belong to the caller's loss.
"""

from __future__ import annotations

import re
from collections import defaultdict

import torch
from torch import Tensor, nn

from midibert.model import MidiBert, init_weights, padding_mask


def mlp(dim: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    """The classifier MidiBERT puts on top of its features: dropout, one ReLU layer, logits."""
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
    )


class AttentionPool(nn.Module):
    """Structured self-attention (Lin et al. 2017, as MidiBERT): `hops` attention distributions
    over the sequence, padding excluded; (B, L, D) -> (B, hops * D)."""

    def __init__(self, dim: int, *, hops: int = 4, att_hidden: int = 350):
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(dim, att_hidden, bias=False), nn.Tanh(), nn.Linear(att_hidden, hops, bias=False)
        )

    def forward(self, x: Tensor, attention_mask: Tensor) -> Tensor:
        scores = self.score(x).masked_fill(~attention_mask.bool()[..., None], float("-inf"))
        weights = scores.softmax(dim=1)  # (B, L, hops), sums to 1 over the real tokens
        return torch.einsum("blh,bld->bhd", weights, x).flatten(1)


class TokenClassifier(nn.Module):
    """A label per token (melody / bridge / accompaniment, velocity bin) from the last layer.

    n_features: numbers per token (a rule's answer for its note, `baselines.NOTE_FEATURES`) joined
    to the token's encoding before the MLP, which may follow them or overrule them by context.
    """

    def __init__(
        self,
        encoder: MidiBert,
        num_classes: int,
        *,
        hidden: int = 256,
        dropout: float = 0.1,
        freeze_encoder: bool = False,
        n_features: int = 0,
    ):
        super().__init__()
        self.encoder = encoder.requires_grad_(not freeze_encoder)
        self.n_features = n_features
        self.classifier = mlp(encoder.cfg.hidden + n_features, hidden, num_classes, dropout)
        self.classifier.apply(init_weights)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, features: Tensor | None = None
    ) -> Tensor:
        """(B, L, num_classes) logits; `features` (B, L, n_features) where the head was built with some."""
        h = self.encoder(input_ids, attention_mask)
        return self.classifier(_joined(h, features, self.n_features, "note"))


class SequenceClassifier(nn.Module):
    """A label per piece (composer, emotion): attention pooling over real tokens, then an MLP.

    n_features: numbers describing the whole piece (standardized note statistics), joined to the
    pooled encoding before the MLP, so a window is classified knowing the piece it is from.
    """

    def __init__(
        self,
        encoder: MidiBert,
        num_classes: int,
        *,
        hidden: int = 256,
        dropout: float = 0.1,
        hops: int = 4,
        freeze_encoder: bool = False,
        n_features: int = 0,
    ):
        super().__init__()
        self.encoder = encoder.requires_grad_(not freeze_encoder)
        self.pool = AttentionPool(encoder.cfg.hidden, hops=hops)
        self.n_features = n_features
        self.classifier = mlp(hops * encoder.cfg.hidden + n_features, hidden, num_classes, dropout)
        self.pool.apply(init_weights)
        self.classifier.apply(init_weights)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, features: Tensor | None = None
    ) -> Tensor:
        """(B, num_classes) logits; `features` (B, n_features) where the head was built with some."""
        if attention_mask is None:
            attention_mask = padding_mask(input_ids, self.encoder.cfg.pad_id)
        pooled = self.pool(self.encoder(input_ids, attention_mask), attention_mask)
        return self.classifier(_joined(pooled, features, self.n_features, "piece"))


def _joined(x: Tensor, features: Tensor | None, n_features: int, kind: str) -> Tensor:
    """`x` with the features a head was built to read joined on its last dimension."""
    if not n_features:
        return x
    if features is None:
        raise ValueError(f"this head reads {n_features} {kind} features beside the tokens; none given")
    return torch.cat([x, features.to(x.dtype)], dim=-1)


def layerwise_lr_groups(model: nn.Module, base_lr: float, decay: float, weight_decay: float = 0.01) -> list[dict]:
    """Optimizer parameter groups with layer-wise LR decay: the head gets base_lr, encoder layer
    i (of n) base_lr * decay ** (n - i), the embeddings (and position tables) decay ** (n + 1).
    Lower layers hold more general features, so fine-tuning should move them less. Biases and
    norms get no weight decay. Frozen parameters are left out."""
    encoders = [m for m in model.modules() if isinstance(m, MidiBert)]
    if len(encoders) != 1:
        raise ValueError(f"expected one MidiBert inside the model, found {len(encoders)}")
    n = encoders[0].cfg.layers
    encoder_params = {id(p) for p in encoders[0].parameters()}
    groups: dict[tuple[int, bool], list[Tensor]] = defaultdict(list)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        layer = re.search(r"layers\.(\d+)\.", name)
        if layer and id(p) in encoder_params:
            depth = int(layer.group(1)) + 1
        elif id(p) in encoder_params and "final_norm" not in name:
            depth = 0
        else:
            depth = n + 1
        groups[depth, p.dim() > 1].append(p)
    return [
        {"params": ps, "lr": base_lr * decay ** (n + 1 - depth), "weight_decay": weight_decay if decays else 0.0}
        for (depth, decays), ps in sorted(groups.items())
    ]
