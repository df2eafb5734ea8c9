"""The segments curve (sf2f.evaluate.segments_curve) on a tiny synthetic dataset and untrained quick-profile models."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from fixtures_data import prepared_synthetic

from sf2f.config import load_config
from sf2f.errors import UsageError
from sf2f.evaluate import SplitEvaluator, make_probes
from sf2f.evaluate.probes import evaluation_segments
from sf2f.evaluate.segments_curve import STRATEGIES, combine_segments, drawn_segments, segments_curve
from sf2f.models import build_generator
from sf2f.models.face_embedders import SmallFaceEmbedder

# 20 identities, of which the 16 training ones are the evaluated split (an untrained model needs no held-out people)
OVERRIDES = [
    "data.synthetic.identities=20",
    "data.synthetic.utterances=2",
    "data.synthetic.faces=2",
    "eval.recall_group_size=4",
    "eval.recall_groups=2",
    "eval.recall_ks=[1,2]",
    "eval.chance_permutations=200",
]
COUNTS = (1, 2, 3, 50)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synthetic")
    cfg, data = prepared_synthetic(root, "sf2f_fuser", OVERRIDES)
    split = data.split("train")
    torch.manual_seed(0)
    evaluator = SplitEvaluator(split, cfg, SmallFaceEmbedder(input_size=64, width=8).eval(), batch_size=8)
    generators = {}
    for config in ("sf2f_1st_stage", "sf2f_fuser"):
        torch.manual_seed(1)
        generators[config] = build_generator(load_config(config, profile="quick", overrides=OVERRIDES))
    return {"cfg": cfg, "evaluator": evaluator, "generators": generators}


def test_drawn_segments_are_seeded_nested_and_capped() -> None:
    available = [6, 2, 9]
    one, three = drawn_segments(available, 1, draw=0, seed=4), drawn_segments(available, 3, draw=0, seed=4)
    assert [len(s) for s in three] == [3, 2, 3]  # the second identity gives the 2 it has
    assert all(torch.equal(a, b[:1]) for a, b in zip(one, three))  # n = 1's segment is among n = 3's
    assert all(len(set(s.tolist())) == len(s) and int(s.max()) < k for s, k in zip(three, available))
    assert all(torch.equal(a, b) for a, b in zip(three, drawn_segments(available, 3, draw=0, seed=4)))
    others = [drawn_segments(available, 3, draw=d, seed=4)[2].tolist() for d in range(1, 6)]
    assert any(o != three[2].tolist() for o in others)  # other draws choose other segments
    with pytest.raises(UsageError, match="at least one segment"):
        drawn_segments(available, 0, draw=0)


def test_the_mean_strategies_average_and_attention_needs_a_fuser(world) -> None:
    plain, fuser = world["generators"]["sf2f_1st_stage"], world["generators"]["sf2f_fuser"].eval()
    width = fuser.fuser.linear_in.in_features
    voices = [torch.randn(3, width), torch.randn(1, width)]
    mean = combine_segments(plain, voices, "mean")
    assert torch.allclose(mean[0], voices[0].mean(dim=0))
    unit = combine_segments(plain, voices, "unit mean")
    assert torch.allclose(unit.norm(dim=1), torch.ones(2))
    assert torch.allclose(unit * mean.norm(dim=1, keepdim=True), mean)
    with pytest.raises(UsageError, match="fuser"):
        combine_segments(plain, voices, "attention")
    with pytest.raises(UsageError, match="unknown strategy"):
        combine_segments(plain, voices, "median")
    fused = combine_segments(fuser, voices, "attention")
    assert fused.shape == (2, fuser.fuser.linear_out.out_features) and torch.allclose(fused.norm(dim=1), torch.ones(2))


def test_rows_per_strategy_and_count_with_growing_segment_counts(world) -> None:
    evaluator = world["evaluator"]
    generator = world["generators"]["sf2f_fuser"]
    generator.train()
    curve = segments_curve(evaluator, generator, "tiny", COUNTS, draws=2)
    assert generator.training  # eval mode only while it runs
    table = pd.DataFrame(curve.rows)
    assert list(zip(table["strategy"], table["segments"])) == [(s, n) for n in COUNTS for s in STRATEGIES]
    identities = len(evaluator.split)
    segments = evaluation_segments(evaluator.split, world["cfg"].data)
    available = [len(segments[i]["segments"]) for i in range(identities)]
    assert max(available) > 3  # the counts below 50 leave segments to choose from
    for strategy, rows in table.groupby("strategy"):
        used = rows["segments used"].to_numpy()
        assert (used[1:] >= used[:-1]).all() and (used <= rows["segments"].to_numpy()).all()
        assert used[-1] == sum(available) / identities  # 50 exceeds every speaker's count: all segments
        # a count every speaker reaches leaves nothing to draw
        assert list(rows["draws"]) == [2 if n < max(available) else 1 for n in COUNTS]
        assert rows[["Cos", "R@1", "1:2 match", "rank p", "Cos p"]].notna().all().all()
    for (strategy, n), probes in curve.probes.items():
        assert probes.shape == (1 if n == 50 else 2, identities, evaluator.embedder.embed_dim)
    again = segments_curve(evaluator, generator, "tiny", COUNTS, draws=2)
    pd.testing.assert_frame_equal(table, pd.DataFrame(again.rows))
    plain = pd.DataFrame(segments_curve(evaluator, world["generators"]["sf2f_1st_stage"], "plain", (1,)).rows)
    assert list(plain["strategy"]) == ["mean", "unit mean"]


def test_all_segments_give_the_evaluations_probes(world) -> None:
    # with every segment, the mean is the average_voice_embedding probe and attention is a fuser model's naive probe
    evaluator, cfg = world["evaluator"], world["cfg"]
    generator = world["generators"]["sf2f_fuser"].eval()
    curve = segments_curve(evaluator, generator, "tiny", (50,))
    for strategy, mode in (("mean", "average_voice_embedding"), ("attention", "naive")):
        probes = make_probes(generator, evaluator.split, cfg.data, evaluator.embedder, mode, cfg.eval.seed,
                             evaluator.box, batch_size=8)
        assert torch.allclose(curve.probes[strategy, 50][0], probes.embeddings, atol=1e-4)
        row = next(r for r in curve.rows if r["strategy"] == strategy)
        assert row["Cos"] == pytest.approx(evaluator.embedding_scores(probes.embeddings)["Cos"], abs=1e-4)
