"""The evaluation metrics on hand-computed cases (recipe §4): Inception-Score formula, similarity, recall in groups,
inter-human similarity, 1:2 matching, Fréchet distance, the tests against chance, the results table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sf2f.evaluate.embeddings import RealFaces, group_mean
from sf2f.evaluate.fid import fid_from_features
from sf2f.evaluate.report import PAPER_NOTE, PAPER_VFS, results_table, write_results
from sf2f.evaluate.retrieval import (
    chance_tests,
    column_ranks,
    grouped_recall,
    inter_human_similarity,
    matching_accuracy,
    paired_similarity,
    pairing_test,
    recall_at_k,
    similarity_table,
    whole_split_recall,
)
from sf2f.evaluate.vggface_score import inception_score

# ---- Inception-Score formula ----------------------------------------------------------------------------------------


def test_distinct_one_hot_predictions_score_the_split_size() -> None:
    probs = np.eye(50)  # every image sure of its own class: p(y) is uniform over the split's 10 classes
    score = inception_score(probs, splits=5, seed=3)
    assert score.mean == pytest.approx(10.0) and score.std == pytest.approx(0.0, abs=1e-12)
    # uneven bounds i*n//5: 23 images give parts of 4, 5, 4, 5, 5
    uneven = inception_score(np.eye(23), splits=5)
    assert uneven.mean == pytest.approx(4.6) and uneven.std == pytest.approx(np.std([4, 5, 4, 5, 5]))


def test_identical_predictions_score_one_and_zeros_give_no_nan() -> None:
    rng = np.random.default_rng(0)
    row = rng.dirichlet(np.ones(7))
    row[2] = 0.0  # an underflowed probability: 0 log 0 counts 0, not NaN
    row /= row.sum()
    score = inception_score(np.tile(row, (20, 1)), splits=5, seed=0)
    assert score.mean == pytest.approx(1.0) and score.std == pytest.approx(0.0, abs=1e-12)


def test_the_shuffle_is_seeded() -> None:
    probs = np.random.default_rng(1).dirichlet(np.full(9, 0.3), size=40)
    assert inception_score(probs, 5, seed=7) == inception_score(probs, 5, seed=7)
    assert inception_score(probs, 5, seed=7) != inception_score(probs, 5, seed=8)
    # a hand-made case in one split (which the shuffle cannot change): p(y) = (3/4, 1/4), KL log(4/3) for the
    # three class-0 rows and log 4 for the class-1 row
    manual = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=float)
    expected = math.exp((3 * math.log(4 / 3) + math.log(4)) / 4)
    assert inception_score(manual, splits=1) == pytest.approx((expected, 0.0))
    with pytest.raises(ValueError, match="splits"):
        inception_score(np.eye(3), splits=5)


# ---- similarity and recall ------------------------------------------------------------------------------------------


def test_known_cosine_l1_and_l2_values() -> None:
    gallery = torch.tensor([[1.0, 2.0, 2.0], [1.0, 0.0, 0.0]])
    probes = torch.tensor([[2.0, 1.0, 2.0], [0.0, 1.0, 0.0]])
    sims = paired_similarity(probes, gallery)
    # row 0: cos 8/9, L1 |-1|+|1|+0 = 2, L2 sqrt(2); row 1: cos 0, L1 2, L2 sqrt(2) (torch adds eps 1e-6 per dim)
    assert sims["Cos"] == pytest.approx((8 / 9 + 0.0) / 2)
    assert sims["L1"] == pytest.approx(2.0, abs=1e-5)
    assert sims["L2"] == pytest.approx(math.sqrt(2), abs=1e-5)
    # the L1 recall table is minus the mean absolute difference
    assert similarity_table(probes, gallery, "l1")[0, 0].item() == pytest.approx(-2 / 3)


def test_perfect_probes_recall_everything_and_k_beyond_the_table_is_nan() -> None:
    gallery = torch.randn(12, 16, generator=torch.Generator().manual_seed(0))
    recall = whole_split_recall(gallery, gallery, [1, 5, 13])
    assert recall[1] == recall[5] == 1.0 and math.isnan(recall[13])
    assert grouped_recall(gallery, gallery, [1], group_size=4, groups=3) == {1: 1.0}
    assert grouped_recall(gallery, gallery, [1], group_size=4, groups=3, method="l1") == {1: 1.0}


def test_groups_are_consecutive_averaged_and_the_tail_is_ignored() -> None:
    gallery = torch.eye(10)
    probes = gallery.clone()
    # group [4, 8) is rotated: every probe points at its neighbour's gallery entry -> 0 hits at K=1 in that group
    probes[4:8] = gallery[[5, 6, 7, 4]]
    # the tail (8, 9) is all wrong, but lies past the second group
    probes[8:10] = gallery[[0, 1]]
    assert grouped_recall(probes, gallery, [1], group_size=4, groups=2) == {1: pytest.approx(0.5)}
    assert whole_split_recall(probes, gallery, [1]) == {1: pytest.approx(0.4)}
    # three groups of 4 need 12 identities: no number rather than a recall over groups that are not there
    assert math.isnan(grouped_recall(probes, gallery, [1], group_size=4, groups=3)[1])


def test_a_permuted_gallery_gives_chance_recall_on_average() -> None:
    rng = torch.Generator().manual_seed(0)
    n, trials, recalls = 20, 300, []
    for _ in range(trials):
        gallery = torch.randn(n, 8, generator=rng)
        probes = gallery[torch.randperm(n, generator=rng)]
        recalls.append(whole_split_recall(probes, gallery, [1, 5, 10]))
    for k in (1, 5, 10):
        assert np.mean([r[k] for r in recalls]) == pytest.approx(k / n, abs=0.02)


def test_ties_count_against_the_probe() -> None:
    assert recall_at_k(torch.ones(5, 5), [1, 4, 5]) == {1: 0.0, 4: 0.0, 5: 1.0}
    # one constant probe against distinct gallery entries: exactly the K best identities hit, K / n
    gallery = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    probes = torch.randn(1, 4, generator=torch.Generator().manual_seed(3)).expand(6, 4)
    assert whole_split_recall(probes, gallery, [1, 2, 3]) == {1: pytest.approx(1 / 6), 2: pytest.approx(2 / 6), 3: 0.5}


def test_column_ranks_count_the_other_columns_scoring_at_least_as_high() -> None:
    table = torch.randint(0, 4, (7, 9), generator=torch.Generator().manual_seed(0)).double()  # many ties
    brute = torch.tensor([[int((table[i] >= table[i, j]).sum()) - 1 for j in range(9)] for i in range(7)])
    assert torch.equal(column_ranks(table), brute)
    # a NaN score ranks last: a probe of non-finite faces never hits, and NaN elsewhere does not lift the right column
    table[0] = math.nan
    table[1, 3] = math.nan
    ranks = column_ranks(table)
    assert (ranks[0] == 8).all() and ranks[1, 3] == 8 and (ranks[1, [0, 1, 2, 4]] <= 7).all()
    assert recall_at_k(torch.full((4, 4), math.nan), [1, 3]) == {1: 0.0, 3: 0.0}


# ---- tests against chance -------------------------------------------------------------------------------------------


def test_pairing_test_on_a_hand_computed_table() -> None:
    # of the 3! pairings only the true one scores a mean of 2 (the others: 0, 1, 1, 0, 0), so the exact p is 1 / 6;
    # each probe meets each entry equally often over all pairings, so their mean score is the table's mean, 6 / 9
    scores = torch.tensor([[3.0, 0, 0], [0, 3, 0], [0, 0, 0]])
    assert pairing_test(scores, permutations=60_000, seed=1) == pytest.approx(1 / 6, abs=0.01)
    # lower is better: every pairing scores at most 2
    assert pairing_test(scores, permutations=1_000, higher_is_better=False) == 1.0


def test_constant_probes_are_never_above_chance_and_perfect_ones_reach_the_floor() -> None:
    gallery = torch.randn(12, 6, generator=torch.Generator().manual_seed(0))
    constant = torch.randn(1, 6, generator=torch.Generator().manual_seed(1)).expand(12, 6)
    assert chance_tests(constant, gallery, permutations=500) == {"rank p": 1.0, "Cos p": 1.0}
    # 12! pairings: none of the 500 random ones is the true one, which alone ranks and matches every identity first
    for method in ("cos", "l1"):
        assert chance_tests(gallery, gallery, method, permutations=500) == {"rank p": 1 / 501, "Cos p": 1 / 501}


def test_pairing_tests_are_seeded_and_give_no_p_value_for_non_finite_scores() -> None:
    probes, gallery = torch.randn(2, 10, 4, generator=torch.Generator().manual_seed(0))
    assert chance_tests(probes, gallery, seed=3) == chance_tests(probes, gallery, seed=3)
    # faces a diverged generator drew: no p-value for their cosines, and their ranks are the worst
    probes[0] = math.nan
    tests = chance_tests(probes, gallery, permutations=200)
    assert math.isnan(tests["Cos p"]) and 0 < tests["rank p"] <= 1


def test_inter_human_similarity_averages_the_off_diagonal() -> None:
    probes = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    gallery = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # cos(p0, r1) = 1/sqrt(2), cos(p1, r0) = 0
    assert inter_human_similarity(probes, gallery) == pytest.approx((1 / math.sqrt(2) + 0.0) / 2)


# ---- 1:2 matching ---------------------------------------------------------------------------------------------------


def test_matching_accuracy_on_hand_cases() -> None:
    faces = torch.eye(3)
    assert matching_accuracy(faces, faces) == 1.0
    # probe 0 points at face 1, probe 1 at face 0, probe 2 between faces 0 and 2 (closer to 2)
    probes = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 2.0]])
    # pairs (i, j): (0,1) lose (0,2) tie -> 0.5; (1,0) lose (1,2) tie -> 0.5; (2,0) win (2,1) win
    assert matching_accuracy(probes, faces) == pytest.approx((0 + 0.5 + 0 + 0.5 + 1 + 1) / 6)
    with pytest.raises(ValueError, match="two identities"):
        matching_accuracy(faces[:1], faces[:1])


# ---- Fréchet distance -----------------------------------------------------------------------------------------------


def _frechet_by_sqrtm(real: np.ndarray, generated: np.ndarray) -> float:
    """The original's route (recipe §4.4): the full covariances and scipy's matrix square root."""
    from scipy import linalg

    mu1, mu2 = real.mean(axis=0), generated.mean(axis=0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(generated, rowvar=False)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real))


def test_frechet_distance_hand_cases() -> None:
    # variances 2 and 8 in 1-D: 0 + 2 + 8 - 2 sqrt(16) = 2; a mean shift adds its squared length
    assert fid_from_features(np.array([[-1.0], [1.0]]), np.array([[-2.0], [2.0]])) == pytest.approx(2.0)
    x = np.random.default_rng(0).normal(size=(300, 6))
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-8)
    assert fid_from_features(x, x + np.array([1.0, 0, 0, 0, 0, 2.0])) == pytest.approx(5.0, abs=1e-8)
    with pytest.raises(ValueError, match="at least two"):
        fid_from_features(x, x[:1])


def test_fid_equals_the_originals_sqrtm_with_few_and_with_many_generated_rows() -> None:
    # fewer generated rows than dimensions (one face per identity) and more: the n x n route is exact in both
    rng = np.random.default_rng(2)
    real = rng.normal(size=(200, 10)) @ rng.normal(size=(10, 10))
    for n in (6, 150):
        generated = rng.normal(size=(n, 10)) @ rng.normal(size=(10, 10)) + 0.5
        assert fid_from_features(real, generated) == pytest.approx(_frechet_by_sqrtm(real, generated), rel=1e-6)


# ---- gallery helpers ------------------------------------------------------------------------------------------------


def test_gallery_is_the_unnormalised_mean_and_held_out_faces_leave_it() -> None:
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [4.0, 0.0], [0.0, 4.0]])
    labels = torch.tensor([0, 0, 1, 2, 2])
    faces = RealFaces(embeddings, labels, torch.arange(5), 3)
    assert torch.equal(faces.gallery, torch.tensor([[0.5, 0.5], [2.0, 2.0], [2.0, 2.0]]))
    held = torch.tensor([1, 2, 3])
    # identity 1 has a single face: it stays in its gallery entry
    assert torch.equal(faces.gallery_without(held), torch.tensor([[1.0, 0.0], [2.0, 2.0], [0.0, 4.0]]))
    first = faces.chosen_face(seed=0)
    other = faces.chosen_face(seed=5, avoid=first)
    assert torch.equal(labels[first], torch.arange(3)) and torch.equal(labels[other], torch.arange(3))
    assert other[0] != first[0] and other[2] != first[2] and other[1] == first[1] == 2
    with pytest.raises(ValueError, match="no rows"):
        group_mean(embeddings, labels, 4)


# ---- the table ------------------------------------------------------------------------------------------------------


def test_results_table_orders_columns_and_adds_the_papers_vfs(tmp_path: Path) -> None:
    rows = [
        {"model": "m", "config": "sf2f_fuser", "mode": "naive", "kind": "model", "FID (embedder)": 3.0,
         "R@10": 0.4, "R@2": 0.1, "Cos": 0.5, "split R@1": 0.05, "1:2 match": 0.7, "rank p": 1 / 10_001},
        {"model": "chance", "kind": "chance", "R@2": 0.02, "R@10": 0.1, "1:2 match": 0.5},
    ]
    table = results_table(rows)
    assert list(table.columns[:6]) == ["model", "config", "mode", "kind", "Cos", "R@2"]
    assert list(table.columns[6:10]) == ["R@10", "split R@1", "rank p", "1:2 match"]
    paper = table[table["kind"] == "paper"]
    assert len(paper) == 1 and (paper["VFS mean"].item(), paper["VFS std"].item()) == PAPER_VFS["sf2f_fuser"]
    csv, md = write_results(table, tmp_path, notes=["a note"])
    text = md.read_text()
    assert "| model" in text and "19.490" in text and "- a note" in text and PAPER_NOTE in text
    assert "nan" not in text  # missing values are blank cells
    assert " 0.0001 |" in text and " 0.700 |" in text  # p-values keep their digits, the rest three decimals
    assert csv.read_text().splitlines()[0].startswith("model,config,mode,kind")
