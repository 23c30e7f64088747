"""MidiBERT: a BERT encoder over compound-word (CP) or REMI tokens, in plain PyTorch.

    cfg = BertConfig.preset("bert-small", vocab_sizes=tokenizer.vocab_sizes)
    model = MidiBertForMLM(cfg)
    logits = model(input_ids, attention_mask)           # one (B, L, V_f) tensor per family
    out = model.loss(logits, targets)                   # targets from masking.mask_tokens

A CP token is F ids (Bar, Position, Pitch, Duration, ...): each family has its own embedding,
the F embeddings are concatenated and projected to the hidden size, and the MLM head predicts
every family separately (Chou et al., MidiBERT-Piano). REMI is the F = 1 case. Attention runs
through `F.scaled_dot_product_attention`, so fused kernels are used where the hardware has them.

The defaults are the recipe measured fastest to learn on small compute (docs/recipe.md): rotary
positions, pre-LN, no dropout. BERT and MidiBERT are post-LN with learned absolute positions and
dropout 0.1 (`position="learned", pre_norm=False, dropout=0.1, attn_dropout=0.1`; the Hydra model
`bert-base-paper`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from midibert.tokenize.base import MASK, PAD, SPECIALS
from midibert.tokenize.labels import IGNORE

POSITIONS = ("learned", "rotary", "relative")


@dataclass
class BertConfig:
    """Size and options of a MidiBert encoder; `to_dict` / `from_dict` round-trip via config.json.

    position:
      "learned"  absolute position embeddings added after the input projection (BERT, MidiBERT);
                 sequences may not exceed `max_len`.
      "rotary"   RoPE (Su et al.): queries and keys are rotated by an angle proportional to their
                 position, so attention scores depend on relative offset only; no parameters.
      "relative" a learned bias per head and clipped distance (j - i in [-max_relative,
                 max_relative]) added to the attention logits (T5-style, without buckets).
                 Cheaper than MidiBERT's `relative_key_query` (Shaw et al.), whose term depends on
                 content too and cannot use fused attention kernels.
    """

    vocab_sizes: list[int]
    emb_size: int = 256  # per family
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    ffn: int = 3072
    # no dropout: with a few thousand steps there is no overfitting to prevent, only learning to slow
    dropout: float = 0.0
    # 0 also lets SDPA use fused (flash) kernels, which on CPU have no dropout and run ~1.5x faster
    # per training step at bert-small size
    attn_dropout: float = 0.0
    max_len: int = 520  # 512 + room for a few special tokens
    # rotary positions let attention use token order from the first step; learned absolute ones
    # start as noise (docs/recipe.md: Position accuracy 55 % vs 16 % after 300 steps)
    position: str = "rotary"
    max_relative: int = 128
    pre_norm: bool = True
    pad_id: int = PAD
    mask_id: int = MASK

    PRESETS = {  # layers, hidden, heads, ffn, emb_size
        "bert-base": (12, 768, 12, 3072, 256),  # the paper's model
        "bert-small": (4, 256, 4, 1024, 256),
        "bert-tiny": (2, 32, 2, 64, 16),  # for tests
    }

    def __post_init__(self):
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {self.position!r}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        self.vocab_sizes = list(self.vocab_sizes)

    @classmethod
    def preset(cls, name: str, vocab_sizes: list[int], **overrides) -> BertConfig:
        """A named size ("bert-base" | "bert-small" | "bert-tiny"); keywords override fields."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(cls.PRESETS)}")
        layers, hidden, heads, ffn, emb = cls.PRESETS[name]
        kw = dict(layers=layers, hidden=hidden, heads=heads, ffn=ffn, emb_size=emb)
        return cls(vocab_sizes=vocab_sizes, **{**kw, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BertConfig:
        return cls(**d)


class Embeddings(nn.Module):
    """Per-family embeddings, scaled by sqrt(emb_size), concatenated and projected to `out`."""

    def __init__(self, vocab_sizes: list[int], emb_size: int, out: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(v, emb_size) for v in vocab_sizes)
        self.proj = nn.Linear(emb_size * len(vocab_sizes), out)
        self.scale = math.sqrt(emb_size)

    def forward(self, input_ids: Tensor) -> Tensor:
        """(B, L, F) or (B, L) ids -> (B, L, out)."""
        if input_ids.dim() == 2:
            input_ids = input_ids.unsqueeze(-1)
        embs = [table(input_ids[..., f]) for f, table in enumerate(self.tables)]
        return self.proj(torch.cat(embs, dim=-1) * self.scale)


def padding_mask(input_ids: Tensor, pad_id: int = PAD) -> Tensor:
    """(B, L) True where a token is real: any family differs from PAD."""
    return input_ids != pad_id if input_ids.dim() == 2 else (input_ids != pad_id).any(-1)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Apply rotary embedding to (B, H, L, D) queries or keys."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class SelfAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.heads, self.dropout = cfg.heads, cfg.attn_dropout
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.hidden)

    def forward(self, x: Tensor, mask: Tensor | None, rope: tuple[Tensor, Tensor] | None) -> Tensor:
        B, L, H = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, H // self.heads).permute(2, 0, 3, 1, 4)
        if rope is not None:
            # under autocast q and k are bf16 while cos / sin are fp32: rotating in fp32 would double
            # the memory traffic of the rotation and hand SDPA fp32 inputs to cast back
            cos, sin = (r.to(q.dtype) for r in rope)
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, L, H))


class Layer(nn.Module):
    """One encoder layer: self-attention and a GELU feed-forward, each with a residual."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.pre_norm = cfg.pre_norm
        self.attn = SelfAttention(cfg)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.hidden), nn.LayerNorm(cfg.hidden)
        self.ffn = nn.Sequential(nn.Linear(cfg.hidden, cfg.ffn), nn.GELU(), nn.Linear(cfg.ffn, cfg.hidden))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor | None, rope: tuple[Tensor, Tensor] | None) -> Tensor:
        if self.pre_norm:
            x = x + self.drop(self.attn(self.norm1(x), mask, rope))
            return x + self.drop(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attn(x, mask, rope)))
        return self.norm2(x + self.drop(self.ffn(x)))


class MidiBert(nn.Module):
    """The encoder: token ids (B, L, F) or (B, L) -> hidden states (B, L, hidden)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = Embeddings(cfg.vocab_sizes, cfg.emb_size, cfg.hidden)
        if cfg.position == "learned":
            self.pos = nn.Embedding(cfg.max_len, cfg.hidden)
        elif cfg.position == "relative":
            self.rel_bias = nn.Embedding(2 * cfg.max_relative + 1, cfg.heads)
        self.embed_norm = nn.LayerNorm(cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.layers))
        # pre-LN leaves the residual stream unnormalised; one final norm, as GPT-2 does
        self.final_norm = nn.LayerNorm(cfg.hidden) if cfg.pre_norm else nn.Identity()
        self.apply(init_weights)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, output_all: bool = False
    ) -> Tensor | list[Tensor]:
        """Last hidden states (B, L, H); with output_all, the embedding output and every layer's.

        attention_mask (B, L) is True for real tokens (default: tokens that are not all PAD);
        no query attends to padding, so outputs at real tokens do not depend on it.
        """
        if attention_mask is None:
            attention_mask = padding_mask(input_ids, self.cfg.pad_id)
        L = input_ids.shape[1]
        x = self.embed(input_ids)
        if self.cfg.position == "learned":
            if L > self.cfg.max_len:
                raise ValueError(f"sequence length {L} exceeds max_len {self.cfg.max_len}")
            x = x + self.pos.weight[:L]
        x = self.drop(self.embed_norm(x))
        mask, rope = self._attention_inputs(attention_mask, L, x.dtype)
        states = [x]
        for layer in self.layers:
            x = layer(x, mask, rope)
            states.append(x)
        states[-1] = self.final_norm(x)
        return states if output_all else states[-1]

    def _attention_inputs(self, attention_mask: Tensor, L: int, dtype: torch.dtype):
        """The SDPA mask (bool, or float when it carries relative bias) and rotary cos/sin."""
        keys = attention_mask[:, None, None, :].bool()  # (B, 1, 1, L): hide padded keys from every query
        # an all-padding row would softmax over nothing and turn NaN; let it see its own padding
        keys = keys | ~keys.any(-1, keepdim=True)
        mask, rope = (None if bool(keys.all()) else keys), None  # no mask lets SDPA pick its fastest kernel
        dev = attention_mask.device
        if self.cfg.position == "relative":
            pos = torch.arange(L, device=dev)
            R = self.cfg.max_relative
            dist = (pos[None, :] - pos[:, None]).clamp(-R, R) + R
            bias = self.rel_bias(dist).permute(2, 0, 1).unsqueeze(0).to(dtype)  # (1, heads, L, L)
            mask = bias.masked_fill(~keys, float("-inf"))
        elif self.cfg.position == "rotary":
            d = self.cfg.hidden // self.cfg.heads
            inv_freq = 1.0 / 10000 ** (torch.arange(0, d, 2, device=dev, dtype=torch.float32) / d)
            angles = torch.arange(L, device=dev, dtype=torch.float32)[:, None] * inv_freq
            angles = torch.cat((angles, angles), dim=-1)
            rope = angles.cos().to(dtype), angles.sin().to(dtype)
        return mask, rope


def init_weights(module: nn.Module) -> None:
    """BERT initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorm."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class MLMHead(nn.Module):
    """One classifier per token family over the encoder's hidden states.

    With `emb_size` (weight tying, Press & Wolf 2017), a family's logits are the hidden state
    projected to `emb_size` and scored against that family's input embedding table, scaled as
    the input scales it (`forward` is given the encoder's Embeddings): a value the head rarely
    sees as a target (a song's own tempo) is then predicted with what the encoder learned of it
    as an input (docs/recipe.md, "Tempo").
    """

    def __init__(self, hidden: int, vocab_sizes: list[int], emb_size: int | None = None):
        super().__init__()
        self.tied = emb_size is not None
        self.heads = nn.ModuleList(nn.Linear(hidden, emb_size or v) for v in vocab_sizes)
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros(v)) for v in vocab_sizes) if self.tied else None

    def forward(self, hidden_states: Tensor, embed: Embeddings | None = None) -> list[Tensor]:
        """(B, L, H) -> a (B, L, V_f) logits tensor per family (`embed` when tied)."""
        if not self.tied:
            return [head(hidden_states) for head in self.heads]
        return [
            F.linear(head(hidden_states), t.weight * embed.scale, b)
            for head, t, b in zip(self.heads, embed.tables, self.bias)
        ]


class MidiBertForMLM(nn.Module):
    """Encoder + MLM head, with the loss MidiBERT pre-trains on; `tie_embeddings` ties each
    family's output to its input embedding table (MLMHead)."""

    def __init__(self, cfg: BertConfig, tie_embeddings: bool = False):
        super().__init__()
        self.cfg = cfg
        self.bert = MidiBert(cfg)
        self.head = MLMHead(cfg.hidden, cfg.vocab_sizes, cfg.emb_size if tie_embeddings else None)
        self.head.apply(init_weights)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> list[Tensor]:
        """A (B, L, V_f) logits tensor per family."""
        return self.head(self.bert(input_ids, attention_mask), self.bert.embed if self.head.tied else None)

    def loss(self, logits: list[Tensor], targets: Tensor, *, weighting: str = "equal") -> dict:
        """Cross-entropy over predicted positions (targets != IGNORE), summed over families with
        weights: "equal", or "vocab" in proportion to vocabulary size (as the paper does, so the
        families with the most values dominate). Returns {"loss", "family_loss", "family_acc"},
        the last two detached lists in family order (NaN for a family with nothing to predict in
        this batch)."""
        if weighting not in ("vocab", "equal"):
            raise ValueError(f"weighting must be 'vocab' or 'equal', got {weighting!r}")
        if targets.dim() == 2:
            targets = targets.unsqueeze(-1)
        sizes = self.cfg.vocab_sizes if weighting == "vocab" else [1] * len(logits)
        total, fam_loss, fam_acc = logits[0].new_zeros(()), [], []
        nan = logits[0].new_tensor(float("nan"))
        for f, lg in enumerate(logits):
            t = targets[..., f]
            picked = t != IGNORE
            if not picked.any():  # cross_entropy over nothing is NaN; leave the sum alone
                fam_loss.append(nan)
                fam_acc.append(nan)
                continue
            loss = F.cross_entropy(lg[picked].float(), t[picked])
            total = total + sizes[f] / sum(sizes) * loss
            fam_loss.append(loss.detach())
            fam_acc.append((lg[picked].argmax(-1) == t[picked]).float().mean())
        return {"loss": total, "family_loss": fam_loss, "family_acc": fam_acc}


class ReplacedTokenDetector(nn.Module):
    """ELECTRA (Clark et al. 2020) over CP tokens: a small masked-LM generator fills the masked
    positions with values sampled from its predictions, and the encoder learns, at every real
    token and for every family, whether the value is the original or the generator's.

    The encoder learns from all the tokens of a window rather than from the 15 % masked, which is
    what makes ELECTRA learn more per step of compute than masked LM. The generator is the encoder's
    shape at `generator_scale` of its width and shares its embedding tables (as ELECTRA does); only
    `bert`, the detector's encoder, is kept for fine-tuning.
    """

    def __init__(self, cfg: BertConfig, generator_scale: float = 0.25, tie_embeddings: bool = False):
        super().__init__()
        self.cfg = cfg
        self.bert = MidiBert(cfg)
        self.detect = nn.Linear(cfg.hidden, len(cfg.vocab_sizes))
        heads = max(1, round(cfg.heads * generator_scale))
        hidden = max(1, round(cfg.hidden * generator_scale / heads)) * heads
        small = replace(cfg, hidden=hidden, heads=heads, ffn=max(1, round(cfg.ffn * generator_scale)))
        self.generator = MidiBertForMLM(small, tie_embeddings=tie_embeddings)
        self.generator.bert.embed.tables = self.bert.embed.tables
        self.detect.apply(init_weights)

    def sample(
        self, logits: list[Tensor], input_ids: Tensor, where: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        """(B, L, F) `input_ids` with every family at the `where` positions drawn from the
        generator's `logits` (never a special id: those are never targets)."""
        out = input_ids.clone()
        for f, lg in enumerate(logits):
            probs = lg[where].detach().float()
            probs[:, : len(SPECIALS)] = float("-inf")
            out[..., f][where] = torch.multinomial(probs.softmax(-1), 1, generator=generator).squeeze(-1)
        return out

    def forward(self, corrupted: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """(B, L, F) logits that each family's value at each token was replaced."""
        return self.detect(self.bert(corrupted, attention_mask))
