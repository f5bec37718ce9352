"""The order in which training features are drawn: batches of similar lengths, in random order.

Dynamic padding pays off only when a batch's features have similar lengths (random batches of
SQuAD features at 256 tokens almost always hold one full-length window: two thirds of the
tokens are real). Hugging Face's `group_by_length` sorts random mega-batches of 50 batches
and serves each mega-batch's batches longest first, so the model sees a sweep from long to
short contexts every 50 steps; it scored below random batches on F1 (issue #17). Here each
random chunk of `chunk_batches` batches is sorted and cut into batches, and all the batches
of the epoch are then shuffled: the padding of sorting, the order of random batches.
bench/quality.py measures both against random padded batches (figures in bench/RESULTS.md).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import Sampler


def shuffled_length_batches(lengths: Sequence[int], batch_size: int, chunk_batches: int,
                            generator: torch.Generator | None = None) -> list[int]:
    """Feature indices whose consecutive `batch_size` slices are batches of similar lengths.

    The batches come in random order, except that the one holding the longest feature is
    first (out of memory at step 1, not hours in) and the one short batch (when the count
    is not a multiple of `batch_size`) is last, so that slicing keeps every batch whole.
    """
    count = len(lengths)
    order = torch.randperm(count, generator=generator).tolist()
    chunk = chunk_batches * batch_size
    batches: list[list[int]] = []
    for start in range(0, count, chunk):
        part = sorted(order[start:start + chunk], key=lengths.__getitem__, reverse=True)
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    short = [batches.pop()] if batches and len(batches[-1]) < batch_size else []
    batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    if batches:
        longest = max(range(len(batches)), key=lambda b: lengths[batches[b][0]])
        batches[0], batches[longest] = batches[longest], batches[0]
    return [i for batch in batches + short for i in batch]


class ShuffledLengthSampler(Sampler[int]):
    """`shuffled_length_batches` as a sampler; a new order at each epoch.

    `batch_size` is what one optimizer step takes from it: the device batch times gradient
    accumulation times the number of devices (components/qa/training.py).

    The order comes from its own generator, seeded with `seed + epoch` (the Trainer calls
    `set_epoch`), as Accelerate's `SeedableRandomSampler` does: every rank draws the same
    order whatever its global RNG has consumed (dropout on CPU draws a different amount on
    each rank once their batches differ), and a run resumed mid-epoch skips into the order
    it was interrupted in.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, chunk_batches: int, seed: int):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.chunk_batches = chunk_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(shuffled_length_batches(self.lengths, self.batch_size, self.chunk_batches,
                                            generator))
