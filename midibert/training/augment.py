"""Random transposition of training windows, for tasks whose labels do not depend on the key
(a pianist's style, a clip's emotion: valence follows the mode, not the tonic).

Every pitch of a window moves by one number of semitones, drawn uniformly from those within
`max_semitones` that keep the whole window on the keyboard, so no note is clipped or dropped.
Draws come from torch's global generator, which the fine-tuner seeds from the step: a resumed
run transposes exactly as the uninterrupted one.
"""

from __future__ import annotations

import torch


def transpose(ids: torch.Tensor, pitch_ids: tuple[int | None, int, int], max_semitones: int) -> torch.Tensor:
    """`ids` (B, L, F) for CP or (B, L) for REMI with each window's pitches shifted at random;
    `pitch_ids` is the tokenizer's (`Tokenizer.pitch_ids`)."""
    column, first, count = pitch_ids
    x = ids[..., column] if column is not None else ids
    value = x - first
    is_pitch = (value >= 0) & (value < count)
    lowest = torch.where(is_pitch, value, count).amin(dim=1)
    highest = torch.where(is_pitch, value, -1).amax(dim=1)
    down = torch.clamp(-lowest, min=-max_semitones)  # a window without pitches: -max .. max, moving nothing
    up = torch.clamp(count - 1 - highest, max=max_semitones)
    shift = down + (torch.rand(len(x)) * (up - down + 1)).long()
    moved = torch.where(is_pitch, x + shift[:, None], x)
    if column is None:
        return moved
    out = ids.clone()
    out[..., column] = moved
    return out
