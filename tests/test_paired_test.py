"""Paired comparisons of two models on the same identities (sf2f.evaluate.retrieval): per-identity statistics,
the sign-flip test and its power."""

from __future__ import annotations

import pytest
import torch

from sf2f.evaluate.retrieval import chance_tests, paired_power, paired_test, per_identity


def _scores(seed: int, n: int = 30) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed))


def test_a_clearly_better_model_gets_a_small_p_and_identical_models_p_one() -> None:
    b = _scores(0)
    better = paired_test(b + 0.5 + 0.1 * _scores(1), b, permutations=2_000)
    # every identity improves: no flip of signs reaches the observed mean but the identity flip (and its mirror)
    assert better["speakers a better"] == 30 and better["speakers b better"] == 0 and better["a better by"] > 0.3
    assert better["p"] < 0.01
    same = paired_test(b, b.clone(), permutations=500)
    assert same == {"a better by": 0.0, "speakers a better": 0, "speakers b better": 0, "p": 1.0}


def test_the_test_is_antisymmetric_and_seeded() -> None:
    a, b = _scores(2), _scores(3)
    forward, backward = paired_test(a, b, seed=7), paired_test(b, a, seed=7)
    assert forward["p"] == backward["p"] and forward["a better by"] == pytest.approx(-backward["a better by"])
    assert forward["speakers a better"] == backward["speakers b better"]
    assert forward["speakers b better"] == backward["speakers a better"]
    assert paired_test(a, b, seed=7) == forward


def test_sign_flips_match_the_exact_enumeration() -> None:
    # d = (1, 1, 1): of the 8 sign patterns, only all + and all - reach |mean| = 1, so the exact p is 2 / 8
    test = paired_test(torch.ones(3), torch.zeros(3), permutations=40_000, seed=1)
    assert test["p"] == pytest.approx(0.25, abs=0.01)
    # d = (2, 1): the patterns (+, +), (-, -) reach 1.5; (+, -) and (-, +) give 0.5: p = 1 / 2
    assert paired_test(torch.tensor([2.0, 1.0]), torch.zeros(2), permutations=40_000)["p"] == pytest.approx(
        0.5, abs=0.01)


def test_paired_test_rejects_what_it_cannot_compare() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        paired_test(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="permutations"):
        paired_test(torch.zeros(3), torch.zeros(3), permutations=0)


def test_power_grows_with_identities_and_stays_near_alpha_without_an_effect() -> None:
    effect = 0.3 + _scores(4, 40)  # a mean difference of about a third of its spread
    power = paired_power(effect, [10, 200], trials=300, permutations=500)
    assert power[10] < 0.6 and power[200] > 0.95
    # differences centred on zero (a symmetric set): rejections at about the 5% level only
    null = torch.cat([_scores(5, 20), -_scores(5, 20)])
    assert paired_power(null, [50], trials=400, permutations=500)[50] < 0.12
    assert paired_power(effect, [30], seed=3) == paired_power(effect, [30], seed=3)
    with pytest.raises(ValueError, match="at least 2"):
        paired_power(torch.ones(1), [30])


def test_per_identity_ranks_and_cosines_average_over_draws() -> None:
    gallery = torch.randn(6, 8, generator=torch.Generator().manual_seed(6))
    perfect = per_identity(gallery, gallery)
    assert torch.equal(perfect["rank"], torch.zeros(6)) and torch.allclose(perfect["cos"], torch.ones(6).double())
    # each probe points at the next identity: its own entry is never first
    shifted = gallery.roll(1, dims=0)
    wrong = per_identity(shifted, gallery)
    assert (wrong["rank"] >= 1).all()
    both = per_identity(torch.stack([gallery, shifted]), gallery)
    assert torch.allclose(both["rank"], wrong["rank"] / 2) and torch.allclose(both["cos"], (1 + wrong["cos"]) / 2)
    # two identical draws test exactly what one does
    assert chance_tests(torch.stack([shifted, shifted]), gallery, permutations=300) == chance_tests(
        shifted, gallery, permutations=300)
