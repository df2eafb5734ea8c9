"""The results table (columns as the original's `test.py`, recipe §4.2, then what it lacked), with `paper` rows: the
VGGFace Scores of recipe §5, the only numbers the original repo reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

# recipe §5, README "Released Models" (HQ-VoxCeleb, VGGFace Score, mean +/- std over the 5 splits)
PAPER_VFS: dict[str, tuple[float, float]] = {
    "v2f": (15.47, 0.67),
    "sf2f_1st_stage": (18.59, 0.87),
    "sf2f_fuser": (19.49, 0.59),
    "sf2f_mid_1st_stage": (19.31, 0.65),
    "sf2f_mid_fuser": (20.10, 0.47),
}
PAPER_NOTE = (
    "Paper rows: the VGGFace Scores of the original repo's README (HQ-VoxCeleb, recipe §5); the repo reports no "
    "recall, cosine, L1 or FID numbers. An ID-classifier score (synthetic data) is not comparable with a VFS."
)

#: the permutation tests against chance (sf2f.evaluate.retrieval)
P_VALUE_COLUMNS = ("rank p", "Cos p")
_LEADING = ["model", "config", "mode", "kind", "identities", "L2", "L1", "Cos", "Human"]
_TRAILING = [
    *P_VALUE_COLUMNS, "1:2 match", "FID (embedder)", "FID (Inception)", "VFS mean", "VFS std",
    "ID-classifier score mean", "ID-classifier score std",
    "sex acc", "sex AUC", "age R2", "age r", "size R2", "size r", "LPIPS mean", "LPIPS std",
]


def _recall_columns(columns: Iterable[str], prefix: str) -> list[str]:
    found = [c for c in columns if c.startswith(prefix) and c[len(prefix):].isdigit()]
    return sorted(found, key=lambda c: int(c[len(prefix):]))


def results_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A DataFrame of evaluation rows in the table's column order, followed by a `paper` row for each config of a
    model row that has a number in recipe §5."""
    rows = [dict(r) for r in rows]
    configs = dict.fromkeys(r["config"] for r in rows if r.get("kind") == "model" and r.get("config") in PAPER_VFS)
    for config in configs:
        mean, std = PAPER_VFS[config]
        rows.append({"model": f"{config} (paper)", "config": config, "kind": "paper", "VFS mean": mean, "VFS std": std})
    table = pd.DataFrame(rows)
    present = list(table.columns)
    order = [c for c in _LEADING if c in present]
    order += _recall_columns(present, "R@") + _recall_columns(present, "split R@")
    order += [c for c in _TRAILING if c in present]
    order += [c for c in present if c not in order]
    return table[order]


def markdown_table(table: pd.DataFrame) -> str:
    """A table as Markdown: empty columns left out, missing values blank, counts as integers, other numbers to three
    decimals, p-values to two significant digits (at three decimals the smallest, 1 / 10,001, would print 0.000)."""
    present = table.dropna(axis=1, how="all")
    # tabulate leaves only None blank (a NaN prints as "nan")
    shown = present.astype(object).where(present.notna(), None)
    for column in present.columns:
        values = present[column].dropna()
        # a count read back from CSV beside missing values is a float column (30.0): show it as the count it is
        if pd.api.types.is_float_dtype(values) and (values == values.round()).all() and column not in P_VALUE_COLUMNS:
            shown[column] = pd.Series([None if v is None else int(v) for v in shown[column]], index=shown.index,
                                      dtype=object)
    formats = [".2g" if column in P_VALUE_COLUMNS else ".3f" for column in shown.columns]
    return shown.to_markdown(index=False, floatfmt=formats, missingval="")


def write_results(table: pd.DataFrame, out_dir: str | Path, stem: str = "results",
                  notes: Iterable[str] = ()) -> tuple[Path, Path]:
    """Write `<stem>.csv` (every digit) and `<stem>.md` (3 decimals, with the notes and the paper caveat below)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    table.to_csv(csv_path, index=False)
    lines = [markdown_table(table), "", *[f"- {n}" for n in dict.fromkeys([*notes, PAPER_NOTE])]]
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path, md_path
