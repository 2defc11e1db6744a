"""The teacher's training order depends on the seed and the epoch only, not on how many times the loader
was iterated before (a resumed run must train its next epoch on the same batches as a straight run)."""

from __future__ import annotations

from recdistill.teacher.shuffle import EpochShuffle


def test_an_epochs_order_is_the_same_every_time_it_is_drawn():
    sampler = EpochShuffle(50, seed=3, epoch=1)
    first = list(sampler)
    assert sorted(first) == list(range(50)) and first != list(range(50))
    assert list(sampler) == first                       # iterating again does not move on
    assert list(EpochShuffle(50, seed=3, epoch=1)) == first


def test_the_epoch_and_the_seed_change_the_order():
    sampler = EpochShuffle(50, seed=3, epoch=1)
    first = list(sampler)
    sampler.set_epoch(2)                                # what Lightning calls at each epoch's start
    assert list(sampler) != first and sorted(sampler) == list(range(50))
    assert list(EpochShuffle(50, seed=4, epoch=1)) != first
