"""sf2f.data.datasets and sf2f.data.segments: stage-1 and fuser samples, the crop and segment collates, the batches
of an epoch and their loader (recipe §1.6)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from fixtures_data import Person, write_meta, write_person

from sf2f.audio import normalize_mel, pad_value
from sf2f.config import AudioConfig
from sf2f.data.datasets import (
    CropCollate,
    SegmentCollate,
    SegmentDataset,
    VoiceFaceDataset,
    epoch_batches,
    face_keys,
    make_loader,
)
from sf2f.data.prepare import prepare
from sf2f.data.prepared import PreparedData
from sf2f.data.segments import cut_segments
from sf2f.faces import normalize_images

AUDIO = AudioConfig()
PAD = pad_value(AUDIO)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory):
    """Six training identities; `Short_Talker` has only utterances shorter than one 125-frame segment."""
    root = tmp_path_factory.mktemp("ds") / "data"
    people = [Person("vox1", f"id1000{k}", f"Person_{k}", utterances=2 + k, faces=1 + k % 3, seconds=(1.5, 3.0)) for k in range(5)]
    people.append(Person("vox2", "id00009", "Short_Talker", utterances=2, faces=2, seconds=(0.5, 0.6)))
    write_meta(root, people)
    rng = np.random.default_rng(1)
    for p in people:
        write_person(root, p, rng)
    out = root.parent / "prepared"
    prepare(root, out, progress=False)
    train = PreparedData(out).split("train")
    assert len(train) == 4 and train.identities["name"].tolist()[-1] == "Short_Talker"
    return train


def test_stage1_item(split) -> None:
    ds = VoiceFaceDataset(split, AUDIO, train=True, seed=0)
    assert len(ds) == 4
    item = ds[1]
    assert item["image"].shape == (3, 64, 64) and item["label"] == 1
    rows = list(split.utterance_rows(1))
    candidates = [normalize_mel(torch.from_numpy(split.mel(r)), AUDIO) for r in rows]
    assert any(c.shape == item["mel"].shape and torch.equal(c, item["mel"]) for c in candidates)
    faces = [normalize_images(split.face(r)) for r in split.face_rows(1)]
    assert any(torch.equal(f, item["image"]) for f in faces)
    # the sample names its face: the trainer keys cached perceptual targets by it
    assert item["face_row"] in split.face_rows(1) and not item["flipped"]
    assert torch.equal(normalize_images(split.face(item["face_row"])), item["image"])


def draws(ds, index: int, epochs: range) -> set:
    out = set()
    for e in epochs:
        ds.epoch = e
        item = ds[index]
        out.add((item["mel"].shape[1], float(item["mel"].sum()), float(item["image"].sum())))
    return out


def test_stage1_randomness_is_seeded_per_epoch_and_evaluation_is_fixed(split) -> None:
    index = 2  # 4 utterances, 3 faces
    train = VoiceFaceDataset(split, AUDIO, train=True, seed=0)
    assert len(draws(train, index, range(12))) > 3  # a new draw each epoch
    assert draws(train, index, range(12)) == draws(VoiceFaceDataset(split, AUDIO, train=True, seed=0), index, range(12))
    assert draws(train, index, range(12)) != draws(VoiceFaceDataset(split, AUDIO, train=True, seed=1), index, range(12))
    evaluation = VoiceFaceDataset(split, AUDIO, train=False, seed=0)
    assert len(draws(evaluation, index, range(12))) == 1


def fake_batch(lengths: list[int], seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"image": torch.zeros(3, 4, 4), "mel": torch.arange(40 * t, dtype=torch.float32).view(40, t), "label": i,
         "face_row": i, "flipped": False, "key": int(rng.integers(2**62))}
        for i, t in enumerate(lengths)
    ]


def test_crop_collate_draws_one_length_per_batch_from_100_to_150_inclusive() -> None:
    collate = CropCollate((100, 150), PAD)
    seen = set()
    for seed in range(1500):
        batch = collate(fake_batch([300, 220, 151], seed))
        length = batch["mel"].shape[2]
        seen.add(length)
        assert batch["mel"].shape[:2] == (3, 40)
        for i, source in enumerate(fake_batch([300, 220, 151], seed)):  # every row is a window of its utterance
            start = int(batch["mel"][i, 0, 0])
            assert torch.equal(batch["mel"][i], source["mel"][:, start : start + length])
    assert seen == set(range(100, 151))


def test_crop_collate_pads_short_utterances_with_the_normalised_zero() -> None:
    batch = CropCollate((120, 120), PAD)(fake_batch([50, 300], 0))
    mel = batch["mel"][0]
    assert torch.equal(mel[:, :50], torch.arange(40 * 50, dtype=torch.float32).view(40, 50))
    assert (mel[:, 50:] == PAD).all() and round(PAD, 4) == -3.4716
    assert batch["label"].tolist() == [0, 1] and batch["image"].shape == (2, 3, 4, 4)


def test_crop_collate_is_reproducible_from_the_sample_keys() -> None:
    a = CropCollate()(fake_batch([400] * 4, 7))
    b = CropCollate()(fake_batch([400] * 4, 7))
    assert torch.equal(a["mel"], b["mel"])


def test_cut_segments_rules() -> None:
    mel = torch.arange(400).repeat(40, 1)
    segments = cut_segments([mel], 125, 125, 20)
    assert [int(s[0, 0]) for s in segments] == [0, 125, 250]  # 1 + (400 - 125) // 125 = 3
    assert cut_segments([mel[:, :124]]) == []
    capped = cut_segments([mel] * 10, max_segments=20)
    assert len(capped) == 20
    rng = np.random.default_rng(0)
    starts = {int(cut_segments([mel], rng=rng)[0][0, 0]) for _ in range(300)}
    assert min(starts) == 0 and max(starts) == 400 - 125 - 1  # uniform in [0, T - 125)
    assert int(cut_segments([mel[:, :125]], rng=rng)[0][0, 0]) == 0


def test_segment_items_and_the_masked_collate(split) -> None:
    ds = SegmentDataset(split, AUDIO, train=True, seed=0)
    items = [ds[i] for i in range(len(ds))]
    counts = [it["segments"].shape[0] for it in items]
    assert all(1 <= n <= 20 for n in counts) and len(set(counts)) > 1  # identities differ: the original would crash
    short = items[-1]["segments"]
    assert short.shape == (1, 40, 125) and (short[0, :, -1] == PAD).all()  # all utterances < 125 frames: one padded
    batch = SegmentCollate(PAD)(items)
    assert batch["segments"].shape == (4, max(counts), 40, 125)
    assert batch["mask"].sum(dim=1).tolist() == counts
    assert (batch["segments"][~batch["mask"]] == PAD).all()
    assert batch["image"].shape == (4, 3, 64, 64)
    assert batch["face_row"].tolist() == [it["face_row"] for it in items]
    assert face_keys(batch) == [2 * it["face_row"] for it in items]  # nothing is flipped without hflip


def test_evaluation_segments_are_the_first_windows_in_sorted_order(split) -> None:
    ds = SegmentDataset(split, AUDIO, train=False, seed=0)
    first = [normalize_mel(torch.from_numpy(split.mel(r)), AUDIO) for r in split.utterance_rows(0)]
    expected = cut_segments(first, 125, 125, 20)
    assert torch.equal(ds[0]["segments"], torch.stack(expected))
    assert torch.equal(ds[0]["segments"], SegmentDataset(split, AUDIO, train=False, seed=5)[0]["segments"])


def test_dataset_normalisation_uses_the_prepared_statistics(split) -> None:
    cfg = dataclasses.replace(AUDIO, mel_norm="dataset")
    ds = VoiceFaceDataset(split, cfg, train=False)
    stats = split.stats()
    assert stats.mean != pytest.approx(AUDIO.mel_mean)
    candidates = [(torch.from_numpy(split.mel(r)) - stats.mean) / stats.std for r in split.utterance_rows(0)]
    assert any(c.shape == ds[0]["mel"].shape and torch.allclose(c, ds[0]["mel"]) for c in candidates)
    assert ds.pad_value == pytest.approx(-stats.mean / stats.std)


def test_epoch_batches_are_whole_seeded_and_shared_out_between_processes() -> None:
    first = epoch_batches(10, 3, seed=0, epoch=0)
    assert [len(b) for b in first] == [3, 3, 3] and len({i for b in first for i in b}) == 9  # the last one dropped
    assert first == epoch_batches(10, 3, seed=0, epoch=0)
    assert first != epoch_batches(10, 3, seed=0, epoch=1) and first != epoch_batches(10, 3, seed=1, epoch=0)
    # two processes: a batch each, from one permutation, no identity in both
    shares = [epoch_batches(10, 2, seed=0, epoch=0, rank=r, world_size=2) for r in (0, 1)]
    assert [len(s) for s in shares] == [2, 2]
    assert not {i for b in shares[0] for i in b} & {i for b in shares[1] for i in b}


@pytest.mark.parametrize("workers", [0, 2])
def test_the_loader_gives_the_same_batches_whatever_the_number_of_workers(split, workers: int) -> None:
    def run(num_workers: int) -> list[torch.Tensor]:
        ds = VoiceFaceDataset(split, AUDIO, train=True, seed=3)
        batches = epoch_batches(len(ds), 2, seed=3, epoch=0)
        loader = make_loader(ds, CropCollate(pad=ds.pad_value), batches, seed=3, num_workers=num_workers)
        return [t for b in loader for t in (b["mel"], b["label"], b["image"])]

    torch.manual_seed(0)
    a = run(workers)
    state = torch.random.get_rng_state()
    b = run(0)
    assert len(a) == 3 * (len(split) // 2) >= 6 and all(torch.equal(x, y) for x, y in zip(a, b))
    assert a[0].shape[0] == 2 and 100 <= a[0].shape[2] <= 150
    assert torch.equal(state, torch.random.get_rng_state())  # the loader never draws from the global random state


def test_hflip(split) -> None:
    ds = VoiceFaceDataset(split, AUDIO, train=True, hflip=True, seed=0)
    (row,) = split.face_rows(0)  # identity 0 has one face: every draw is it or its mirror image
    face = normalize_images(split.face(row))
    seen = []
    for epoch in range(20):
        ds.epoch = epoch
        item = ds[0]
        image = item["image"]
        seen.append("flipped" if torch.equal(image, face.flip(-1)) else "plain" if torch.equal(image, face) else "other")
        assert item["flipped"] == (seen[-1] == "flipped")
    assert set(seen) == {"flipped", "plain"}
    keys = face_keys(CropCollate(pad=PAD)([ds[0] for _ in range(1)] + [ds[1]]))
    assert keys[0] % 2 == int(ds[0]["flipped"]) and keys[0] // 2 == split.face_rows(0)[0]
    assert not VoiceFaceDataset(split, AUDIO, train=False, hflip=True).hflip  # never at evaluation
