"""Evaluating a generator on a tiny prepared synthetic split: deterministic probes and rows, reference bounds, the
optional parts (ID classifier, attribute probes, FID Inception, LPIPS) and their missing-weights messages."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_data import prepared_synthetic
from torch import nn

from sf2f.audio import normalize_mel
from sf2f.config import load_config
from sf2f.data.synthetic import read_traits
from sf2f.evaluate import (
    PROBE_MODES,
    AttributeProbe,
    IdentityClassifier,
    SplitEvaluator,
    make_probes,
    results_table,
)
from sf2f.evaluate.attributes import shared_trait_faces, split_traits
from sf2f.evaluate.diversity import load_lpips, segment_face_pairs
from sf2f.evaluate.fid import _fid_inception_network, load_fid_inception
from sf2f.evaluate.probes import evaluation_segments
from sf2f.faces import normalize_images
from sf2f.models import build_generator
from sf2f.models.face_embedders import SmallFaceEmbedder
from sf2f.weights import REGISTRY, WeightFile, WeightsError

# 60 identities: the original split rule leaves 6 for test (two recall groups of 3) and 48 for training
OVERRIDES = [
    "data.synthetic.identities=60",
    "data.synthetic.utterances=2",
    "data.synthetic.faces=2",
    "eval.recall_group_size=3",
    "eval.recall_groups=2",
    "eval.recall_ks=[1,2,5]",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synthetic")
    cfg, data = prepared_synthetic(root, "sf2f_1st_stage", OVERRIDES)
    torch.manual_seed(0)
    embedder = SmallFaceEmbedder(input_size=64, width=8).eval()
    train = data.split("train")
    return {
        "cfg": cfg,
        "root": root,
        "test": data.split("test"),
        "train": train,
        "embedder": embedder,
        "traits": read_traits(root),
        "classifier": IdentityClassifier.fit(embedder, train),
        "attributes": AttributeProbe.fit(train, read_traits(root)),
    }


def _generator(config: str, world, seed: int = 1) -> nn.Module:
    cfg = load_config(config, profile="quick", overrides=[f"data.root={world['root']}", *OVERRIDES])
    torch.manual_seed(seed)
    return build_generator(cfg)


def _evaluate(world, generator: nn.Module) -> pd.DataFrame:
    evaluator = SplitEvaluator(
        world["test"], world["cfg"], world["embedder"], image_classifier=world["classifier"],
        attribute_probe=world["attributes"], batch_size=4,
    )
    rows = evaluator.evaluate(generator, "tiny") + evaluator.reference_rows(world["train"])
    return results_table(rows)


def test_the_same_evaluation_twice_gives_identical_numbers(world) -> None:
    generator = _generator("sf2f_1st_stage", world)
    generator.train()
    first = _evaluate(world, generator)
    assert generator.training  # evaluation switches to eval mode and back
    second = _evaluate(world, generator)
    pd.testing.assert_frame_equal(first, second)
    models = first[first["kind"] == "model"]
    assert list(models["mode"]) == list(PROBE_MODES)
    numbers = ["L2", "L1", "Cos", "Human", "R@1", "R@2", "split R@5", "rank p", "Cos p", "1:2 match",
               "FID (embedder)", "ID-classifier score mean", "sex acc", "age R2"]
    assert np.isfinite(models[numbers].to_numpy(float)).all()
    assert models["R@5"].isna().all()  # K = 5 exceeds the group of 3
    assert set(first["kind"]) == {"model", "chance", "upper bound", "lower bound", "reference", "paper"}
    assert (first.loc[first["kind"] == "paper", "VFS mean"] == 18.59).all()


def test_reference_rows_bound_the_metrics(world) -> None:
    evaluator = SplitEvaluator(world["test"], world["cfg"], world["embedder"], attribute_probe=world["attributes"])
    chance, truth, mean, shared = evaluator.reference_rows(world["train"])
    assert chance["R@1"] == pytest.approx(1 / 3) and chance["split R@2"] == pytest.approx(2 / 6)
    assert chance["1:2 match"] == 0.5
    # one face for every identity: exactly K identities of each group rank it among their K best, K / S
    assert mean["R@1"] == pytest.approx(1 / 3) and mean["split R@1"] == pytest.approx(1 / 6)
    assert mean["1:2 match"] == 0.5 and mean["Cos"] == pytest.approx(mean["Human"])
    # the same probe for everybody: every pairing of probes and identities scores alike, never above chance
    assert mean["rank p"] == 1.0 and mean["Cos p"] == 1.0
    # real faces as probes, held out of their own gallery entry: well above chance even for an untrained embedder
    assert truth["split R@1"] > chance["split R@1"] and truth["1:2 match"] > 0.5
    assert truth["sex acc"] >= chance["sex acc"]
    assert truth["FID (embedder)"] < mean["FID (embedder)"]
    # the mean face of people who share the speaker's sex, age and size carries those traits, unlike the mean face
    assert shared["model"] == "shared-trait mean face" and shared["sex acc"] > mean["sex acc"]
    # without traits (real data) there is no such row
    plain = SplitEvaluator(world["test"], world["cfg"], world["embedder"])
    assert [r["model"] for r in plain.reference_rows(world["train"])] == ["chance", "ground truth", "mean face"]


def test_shared_trait_faces_average_the_nearest_people_of_the_same_sex(world) -> None:
    train, traits = world["train"], world["traits"]
    train_truth = split_traits(train, traits)
    person = train_truth.iloc[[0]]
    # k = 1: a training identity's own faces are its nearest match, so the result is its mean face
    own = shared_trait_faces(train, train_truth, person, k=1)
    faces = torch.stack([normalize_images(train.face(r)) for r in train.face_rows(0)])
    assert torch.allclose(own[0], faces.mean(0), atol=1e-6)
    # k = all of one sex: the mean over every identity of that sex, whatever the age and size asked for
    same = np.flatnonzero(train_truth["sex"].to_numpy() == person["sex"].iloc[0])
    everyone = shared_trait_faces(train, train_truth, person.assign(age=99.0, size=-3.0), k=len(train_truth))
    means = torch.stack([torch.stack([normalize_images(train.face(r)) for r in train.face_rows(i)]).mean(0)
                         for i in same])
    assert torch.allclose(everyone[0], means.mean(0), atol=1e-5)


def test_fuser_generators_take_the_segment_path(world) -> None:
    generator = _generator("sf2f_fuser", world)
    cfg = world["cfg"]
    probes = [make_probes(generator, world["test"], cfg.data, world["embedder"], m, seed=0, batch_size=4)
              for m in PROBE_MODES]
    again = make_probes(generator, world["test"], cfg.data, world["embedder"], "naive", seed=0, batch_size=2)
    n = len(world["test"])
    for p in probes:
        assert p.embeddings.shape == (n, 512) and p.images.shape == (n, 3, 64, 64)
    # padded batches of fused segments give the same faces whatever the batch composition (masking, eval mode)
    assert torch.allclose(again.images, probes[0].images, atol=1e-5)


def test_evaluation_segments_are_the_first_windows_of_the_sorted_utterances(world) -> None:
    split, cfg = world["test"], world["cfg"]
    segments = evaluation_segments(split, cfg.data)
    for label in range(len(split)):
        rows = list(split.utterance_rows(label))
        paths = list(split.utterances.iloc[rows]["path"])
        assert paths == sorted(paths)
        stack = segments[label]["segments"]
        frames = [split.mel(r).shape[1] for r in rows]
        assert len(stack) == max(1, min(cfg.data.max_segments, sum(f // 125 for f in frames)))
        first = normalize_mel(torch.from_numpy(split.mel(rows[0])), cfg.data.audio)
        if frames[0] >= 125:
            assert torch.equal(stack[0], first[:, :125])


def test_classifier_and_attribute_probes(world) -> None:
    test = world["test"]
    faces = torch.stack([_real_face(test, i) for i in range(len(test))])
    probs = world["classifier"].probabilities(faces)
    assert probs.shape == (len(test), len(world["train"])) and np.allclose(probs.sum(axis=1), 1.0)
    predicted = world["attributes"].predict(faces * 50.0)  # far outside the real faces: clipped to training ranges
    ages = world["attributes"].train["age"]
    assert predicted["age"].between(ages.min(), ages.max()).all() and set(predicted["sex"]) <= {"m", "f"}
    on_features = AttributeProbe.fit(world["train"], world["traits"], "embedder", world["embedder"])
    assert set(on_features.score(faces, split_traits(world["test"], world["traits"]))) == {
        "sex acc", "sex AUC", "age R2", "age r", "size R2", "size r"
    }
    with pytest.raises(ValueError, match="needs a face embedder"):
        AttributeProbe.fit(world["train"], world["traits"], "embedder")


def test_attribute_orderings_survive_a_global_offset(world) -> None:
    """Generated faces off the real faces' colour scale shift every reading alike: the AUC and r, which only rank the
    speakers, stay; accuracy falls to the share of one sex and R^2 drops."""
    test = world["test"]
    faces = torch.stack([_real_face(test, i) for i in range(len(test))])
    truth = split_traits(test, world["traits"])
    probe = world["attributes"]
    shifted = copy.deepcopy(probe)
    shifted.sex[-1].intercept_ += 1e3
    shifted.age[-1].intercept_ += 1e3
    plain, moved = probe.score(faces, truth), shifted.score(faces, truth)
    assert moved["sex AUC"] == plain["sex AUC"] and moved["age r"] == pytest.approx(plain["age r"])
    assert moved["sex acc"] == pytest.approx(float((truth["sex"] == probe.sex_positive).mean()))
    assert moved["age R2"] < plain["age R2"]
    assert 0.5 < plain["sex AUC"] <= 1.0  # real faces: the probe separates the sexes


def _real_face(split, label: int) -> torch.Tensor:
    return normalize_images(split.face(split.face_rows(label)[0]))


class _MeanAbsolute(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().flatten(1).mean(dim=1)


def test_lpips_pairs_and_the_message_without_weights(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generator, cfg = _generator("sf2f_1st_stage", world), world["cfg"]
    a, b = segment_face_pairs(generator, world["test"], cfg.data, cfg.eval.seed)
    assert a.shape == b.shape and a.shape[1:] == (3, 64, 64)
    evaluator = SplitEvaluator(world["test"], cfg, world["embedder"], lpips=_MeanAbsolute())
    (row,) = evaluator.evaluate(generator, "tiny", modes=["naive"])
    distances = (a - b).abs().flatten(1).mean(dim=1)
    assert row["LPIPS mean"] == pytest.approx(float(distances.mean()))
    assert row["LPIPS std"] == pytest.approx(float(distances.std(unbiased=False))) and row["LPIPS std"] > 0
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as missing:
        load_lpips()
    assert REGISTRY["lpips_alexnet"].url in str(missing.value)


def _entry(name: str, path: Path) -> WeightFile:
    real = REGISTRY[name]
    return WeightFile(real.name, path.name, real.url, None, None, real.hub_subdir, real.purpose)


def test_lpips_loads_a_user_alexnet_without_downloading(tmp_path: Path) -> None:
    from torchvision.models import alexnet

    torch.manual_seed(0)
    trunk = {k: v for k, v in alexnet(weights=None).state_dict().items() if k.startswith("features.")}
    path = tmp_path / "alexnet.pth"
    torch.save(trunk, path)
    distance = load_lpips(path, entry=_entry("lpips_alexnet", path))
    x = torch.randn(2, 3, 64, 64)
    d = distance(x, x.flip(0))
    assert d.shape == (2,) and (d > 0).all() and torch.allclose(distance(x, x), torch.zeros(2), atol=1e-6)
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="AlexNet"):
        load_lpips(path, entry=_entry("lpips_alexnet", path))


def test_fid_inception_loads_user_weights_and_says_where_to_get_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="pt_inception-2015-12-05-6726825d.pth"):
        load_fid_inception()
    torch.manual_seed(0)
    path = tmp_path / "inception.pth"
    torch.save(_fid_inception_network().state_dict(), path)
    features = load_fid_inception(path, entry=_entry("fid_inception", path))
    out = features(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 2048) and torch.isfinite(out).all()
    torch.save({"fc.weight": torch.zeros(3)}, path)
    with pytest.raises(WeightsError, match="not the FID Inception"):
        load_fid_inception(path, entry=_entry("fid_inception", path))
    path.write_bytes(b"<html>a download page, not the weights</html>")
    with pytest.raises(WeightsError, match="inception.pth: not a readable state dict: not the zip archive"):
        load_fid_inception(path, entry=_entry("fid_inception", path))


def test_results_table_of_evaluator_rows(world) -> None:
    evaluator = SplitEvaluator(world["test"], world["cfg"], world["embedder"])
    rows = evaluator.evaluate(_generator("sf2f_1st_stage", world), "a", modes=["naive"])
    rows += evaluator.evaluate(_generator("sf2f_1st_stage", world, seed=2), "b", modes=["naive"], config="v2f")
    table = results_table(rows + evaluator.reference_rows())
    assert list(table["model"]) == ["a", "b", "chance", "ground truth", "sf2f_1st_stage (paper)", "v2f (paper)"]
