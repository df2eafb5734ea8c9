"""sf2f.data.layouts: meta files, the join by name, the split rules and split.json (recipe §1.1-1.3)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fixtures_data import VOX1_COLUMNS, build_dataset, write_meta

from sf2f.data import layouts
from sf2f.data.layouts import LayoutError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return build_dataset(tmp_path_factory.mktemp("layout") / "data", n_per_sub=5, bad=True)


def test_meta_readers_use_the_right_separator_and_keep_unicode(tiny) -> None:
    vox1 = layouts.read_meta(tiny.root / "vox1" / "vox1_meta.csv", "vox1")
    vox2 = layouts.read_meta(tiny.root / "vox2" / "full_vox2_meta.csv", "vox2")
    assert list(vox1.columns) == ["row", "speaker_id", "name", "gender", "set"]
    assert vox1["row"].tolist() == list(range(12))
    assert "Zoë_Ünal" in set(vox1["name"]) and "Aco_Petrović" in set(vox2["name"]) and "李_小龙" in set(vox2["name"])
    assert vox2.loc[vox2["name"] == "Aco_Petrović", "speaker_id"].item() == "id00000"


@pytest.mark.parametrize("sub, column", [("vox1", "VGGFace1 ID"), ("vox2", "VoxCeleb2ID")])
def test_a_meta_file_with_a_missing_column_is_a_clear_error(tmp_path: Path, tiny, sub: str, column: str) -> None:
    write_meta(tmp_path, tiny.people, drop_column=column)
    path = tmp_path / sub / layouts.META[sub].file
    with pytest.raises(LayoutError, match=rf"{path}: missing column\(s\) '{column}'"):
        layouts.read_meta(path, sub)


def test_a_vox1_meta_with_commas_names_the_separator(tmp_path: Path) -> None:
    path = tmp_path / "vox1_meta.csv"
    path.write_text(",".join(VOX1_COLUMNS) + "\nid10001,A.J._Buckley,m,Ireland,dev\n", encoding="utf-8")
    with pytest.raises(LayoutError, match="TAB-separated"):
        layouts.read_meta(path, "vox1")


def test_a_missing_meta_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "vox2" / "masked_faces").mkdir(parents=True)
    with pytest.raises(LayoutError, match="full_vox2_meta.csv.*not found"):
        layouts.build_index(tmp_path, ["vox2"])


def test_index_joins_speech_and_faces_by_name(tiny) -> None:
    index = layouts.build_index(tiny.root)
    names = list(zip(index.identities["sub"], index.identities["name"]))
    expected = sorted((p.sub, p.name) for p in tiny.usable())
    assert names == expected  # sorted: vox1 first, then vox2, alphabetically (§1.2)
    first = index.identities.iloc[0]
    assert first["n_utterances"] == len(index.utterances.query("sub == @first['sub'] and name == @first['name']"))
    assert index.utterances["path"].str.startswith("raw_wav/").all()
    assert index.faces["path"].str.contains("/masked_faces/").all()
    problems = {(sub, name, reason) for sub, name, _, _, reason in index.problems}
    assert ("vox1", "Faces_Only", "has faces but no speech") in problems
    assert ("vox1", "Speech_Only", "has speech but no masked faces") in problems
    assert ("vox2", "", "speaker id id09003 is not in full_vox2_meta.csv") in problems


def test_index_of_a_folder_without_any_sub_dataset_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="none of the sub-datasets"):
        layouts.build_index(tmp_path)
    with pytest.raises(LayoutError, match="dataset folder not found"):
        layouts.build_index(tmp_path / "missing")


def meta_table(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"row": range(rows), "speaker_id": [f"id{i}" for i in range(rows)], "name": [f"N{i:05d}" for i in range(rows)],
                         "gender": "", "set": ""})


@pytest.mark.parametrize("sub, rows, sizes", [("vox1", 1251, (1001, 125, 125)), ("vox2", 6114, (4892, 611, 611))])
def test_original_split_rule_gives_the_reference_counts(sub: str, rows: int, sizes: tuple) -> None:
    split = layouts.original_split({sub: meta_table(rows)})[sub]
    assert tuple(len(split[s]) for s in layouts.SPLITS) == sizes
    assert split["test"][:2] == ["N00008", "N00018"] and split["val"][:2] == ["N00009", "N00019"]


def test_seeded_split_is_reproducible_disjoint_and_sized(tiny) -> None:
    index = layouts.build_index(tiny.root)
    many = pd.DataFrame({"sub": "vox1", "name": [f"P{i:03d}" for i in range(200)]})
    a, b = layouts.seeded_split(many, (0.8, 0.1, 0.1), 1), layouts.seeded_split(many, (0.8, 0.1, 0.1), 1)
    c = layouts.seeded_split(many, (0.8, 0.1, 0.1), 2)
    assert a == b and a != c
    assert [len(a["vox1"][s]) for s in layouts.SPLITS] == [160, 20, 20]
    assert len(set().union(*a["vox1"].values())) == 200
    small = layouts.seeded_split(index.identities, (0.6, 0.2, 0.2), 0)
    assert set(small) == {"vox1", "vox2"} and all(small[s]["test"] for s in small)


def test_split_is_written_once_and_reused(tmp_path: Path, tiny) -> None:
    index = layouts.build_index(tiny.root)
    out = tmp_path / "out"
    first, source = layouts.load_or_create_split(index, out, "original")
    assert source == out / "split.json" and json.loads(source.read_text(encoding="utf-8")) == first
    assert "Zoë_Ünal" in source.read_text(encoding="utf-8")  # written as UTF-8, not escaped
    again, _ = layouts.load_or_create_split(index, out, "seeded", seed=5)  # the written one wins over a new rule
    assert again == first


def test_the_datasets_own_split_wins(tmp_path: Path, tiny) -> None:
    index = layouts.build_index(tiny.root)
    given = {"vox1": {"train": ["A.J._Buckley"], "val": ["Björk"], "test": []}}
    (tmp_path / "split.json").write_text(json.dumps(given), encoding="utf-8")
    index.root = tmp_path
    split, source = layouts.load_or_create_split(index, tmp_path / "out")
    assert source == tmp_path / "split.json" and split == given


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"vox1": {"train": ["A"], "test": ["A"]}}', "both train and test"),
        ('{"vox1": {"training": []}}', "unknown split"),
        ('["A"]', "maps sub-datasets"),
        ("{not json", "not a readable split file"),
    ],
)
def test_bad_split_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "split.json").write_text(content, encoding="utf-8")
    with pytest.raises(LayoutError, match=message):
        layouts.read_split(tmp_path / "split.json")

