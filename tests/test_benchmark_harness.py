"""The benchmark harness computes ratios of medians; a fake clock makes that checkable without timing anything."""

from __future__ import annotations

import itertools

import pytest

from benchmarks.harness import compare, format_table


def _fake_clock(durations: list[float]):
    """A timer whose consecutive (start, stop) pairs are `durations` apart."""
    stamps = itertools.accumulate(itertools.chain.from_iterable((0.0, d) for d in durations))
    return lambda: next(stamps)


def test_compare_reports_ratio_of_medians() -> None:
    calls = {"cand": 0, "ref": 0}

    def cand() -> None:
        calls["cand"] += 1

    def ref() -> None:
        calls["ref"] += 1

    # interleaved: cand, ref, cand, ref, cand, ref
    clock = _fake_clock([1.0, 4.0, 3.0, 2.0, 2.0, 100.0])
    result = compare("x", cand, ref, repeats=3, warmup=2, timer=clock)
    assert calls == {"cand": 5, "ref": 5}
    assert result.candidate == [1.0, 3.0, 2.0] and result.reference == [4.0, 2.0, 100.0]
    assert result.candidate_median == 2.0 and result.reference_median == 4.0
    assert result.ratio == pytest.approx(0.5) and result.speedup == pytest.approx(2.0)
    table = format_table([result])
    assert "| x |" in table and "0.500" in table


def test_compare_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        compare("x", lambda: None, lambda: None, repeats=0)
