"""Moving a window's pitches, every pitch by one number of semitones: at random while training
(`transpose`), and into one key for every input of a task that reads them so (`normalize_key`).

Both keep a window on the keyboard, so no note is clipped or dropped, and move nothing but pitch
ids (PAD, MASK and the other families stay). `pitch_ids` is the tokenizer's
(`Tokenizer.pitch_ids`): (family column or None, id of the lowest pitch, number of pitches, MIDI
pitch of the lowest).
"""

from __future__ import annotations

import torch


def _pitches(ids: torch.Tensor, pitch_ids, mask: torch.Tensor | None = None):
    """(pitch column of ids, offset of each token from the lowest pitch id, which tokens are
    pitches, each window's lowest and highest offset)."""
    column, first, count, _ = pitch_ids
    x = ids[..., column] if column is not None else ids
    value = x - first
    is_pitch = (value >= 0) & (value < count)
    if mask is not None:
        is_pitch &= mask.bool()
    low = torch.where(is_pitch, value, count).amin(dim=1)
    high = torch.where(is_pitch, value, -1).amax(dim=1)
    return x, value, is_pitch, low, high


def _shifted(ids: torch.Tensor, column: int | None, x, is_pitch, shift: torch.Tensor) -> torch.Tensor:
    moved = torch.where(is_pitch, x + shift[:, None], x)
    if column is None:
        return moved
    out = ids.clone()
    out[..., column] = moved
    return out


def transpose(ids: torch.Tensor, pitch_ids, max_semitones: int) -> torch.Tensor:
    """`ids` (B, L, F) for CP or (B, L) for REMI with each window's pitches shifted by a number of
    semitones drawn uniformly from those within `max_semitones` that keep the window on the
    keyboard. Draws come from torch's global generator, which the fine-tuner seeds from the step:
    a resumed run transposes exactly as the uninterrupted one."""
    column, _, count, _ = pitch_ids
    x, _, is_pitch, low, high = _pitches(ids, pitch_ids)
    down = torch.clamp(-low, min=-max_semitones)  # a window without pitches: -max .. max, moving nothing
    up = torch.clamp(count - 1 - high, max=max_semitones)
    shift = down + (torch.rand(len(x), device=x.device) * (up - down + 1)).long()
    return _shifted(ids, column, x, is_pitch, shift)


def normalize_key(ids: torch.Tensor, mask: torch.Tensor, pitch_ids) -> torch.Tensor:
    """`ids` with each window moved so its most used pitch class (among real tokens, `mask`) is C,
    by the nearer of the two shifts, up or down, that keeps it on the keyboard (a window spanning
    the keyboard stays). In one key, major and minor differ in which pitches a window uses, which
    embeddings of absolute pitches show directly; across keys a network must learn how pitches
    relate, from a few hundred pieces (valence on EMOPIA, docs/recipe.md)."""
    column, _, count, lowest = pitch_ids
    x, value, is_pitch, low, high = _pitches(ids, pitch_ids, mask)
    classes = torch.where(is_pitch, (value + lowest) % 12, 12)  # 12: not a pitch
    histogram = torch.nn.functional.one_hot(classes, 13).sum(1)[:, :12]
    up = (-histogram.argmax(1)) % 12  # ties go to the lowest class, so the shift is deterministic
    down = up - 12
    fits_up, fits_down = high + up < count, low + down >= 0
    shift = torch.where(fits_down & ((up > 6) | ~fits_up), down, up)
    shift = torch.where(fits_up | fits_down, shift, 0)
    return _shifted(ids, column, x, is_pitch, shift)
