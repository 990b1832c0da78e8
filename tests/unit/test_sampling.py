"""Proportional stratified sampling, checked against brute-force counting."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cytoimagenet.curation.sampling import group_codes, largest_remainder, stratified_sample

sizes_st = st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=12)


def _brute_force_is_hamilton(sizes: list[int], total: int, quotas: list[int]) -> bool:
    """Check, with exact fractions, that ``quotas`` is a largest-remainder allocation."""
    n = sum(sizes)
    if total >= n:
        return quotas == sizes
    exact = [Fraction(s * total, n) for s in sizes]
    floors = [int(e) for e in exact]
    if sum(quotas) != total:
        return False
    up = []
    for q, f, e in zip(quotas, floors, exact, strict=True):
        if q == f + 1 and e != f:
            up.append(e - f)
        elif q != f:
            return False
    # Every stratum rounded up has a remainder at least as large as any left down.
    down = [e - f for q, f, e in zip(quotas, floors, exact, strict=True) if q == f and e != f]
    return not up or not down or min(up) >= max(down)


@settings(max_examples=400, deadline=None)
@given(sizes_st, st.integers(min_value=0, max_value=400), st.integers(0, 2**32 - 1))
def test_largest_remainder_matches_brute_force(sizes: list[int], total: int, seed: int) -> None:
    quotas = largest_remainder(sizes, total, np.random.default_rng(seed)).tolist()
    assert all(0 <= q <= s for q, s in zip(quotas, sizes, strict=True))
    assert _brute_force_is_hamilton(sizes, total, quotas)


@settings(max_examples=200, deadline=None)
@given(sizes_st, st.integers(min_value=1, max_value=200), st.integers(0, 2**32 - 1))
def test_stratified_sample_takes_the_quotas(sizes: list[int], total: int, seed: int) -> None:
    sizes = [s for s in sizes if s > 0]  # group ids are dense: no empty strata
    groups = np.repeat(np.arange(len(sizes)), sizes)
    if len(groups) == 0:
        return
    picked = stratified_sample(groups, total, np.random.default_rng(seed))
    assert len(np.unique(picked)) == len(picked) == min(total, len(groups))
    counts = np.bincount(groups[picked], minlength=len(sizes))
    expected = largest_remainder(sizes, total, np.random.default_rng(seed))
    # Same generator state at allocation time → the same quotas, stratum by stratum.
    assert counts.tolist() == expected.tolist() or total >= len(groups)


def test_sampling_is_reproducible_and_seed_dependent() -> None:
    groups = np.random.default_rng(0).integers(0, 7, 5000)
    a = stratified_sample(groups, 300, np.random.default_rng(42))
    b = stratified_sample(groups, 300, np.random.default_rng(42))
    c = stratified_sample(groups, 300, np.random.default_rng(43))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # Allocation stays proportional whatever the seed.
    assert np.abs(np.bincount(groups[a]) - np.bincount(groups[c])).max() <= 1


def test_small_strata_are_not_starved() -> None:
    # pandas' per-group rounding gives a 1-row stratum nothing until frac > 0.5; here
    # 10 singleton strata and one of 990 rows split 100 draws as 99/1000 → 1 wins a draw.
    groups = np.concatenate([np.zeros(990, int), np.arange(1, 11)])
    picked = stratified_sample(groups, 100, np.random.default_rng(0))
    counts = np.bincount(groups[picked], minlength=11)
    assert counts[0] == 99 and counts[1:].sum() == 1


def test_group_codes_combines_columns() -> None:
    a = np.array([0, 0, 1, 1, 0])
    b = np.array([3, 4, 3, 4, 3])
    codes = group_codes([a, b])
    assert codes[0] == codes[4] and len(set(codes.tolist())) == 4
