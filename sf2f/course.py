"""`make demo`: the numbered notebooks run in order with papermill into `runs/<timestamp>/`, beside the paper configs
resolved under the profile; the run stops at the first failing notebook (named with its cell) and ends with
`summary.md`, `summary.json` and `results.md` (every `results/*.csv` the notebooks wrote)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Sequence

import pandas as pd

from sf2f.config import PAPER_CONFIGS, PROFILES, load_config, save_config
from sf2f.errors import MissingPathError, UsageError
from sf2f.paths import NOTEBOOK_DIR, REPO_ROOT, RUNS_DIR

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")

#: The course, in order: notebook stem, title, what it teaches (the map in notebook 00)
COURSE_MAP: tuple[tuple[str, str, str], ...] = (
    ("00_overview", "Overview", "what voice-to-face generation is and is not; the pipeline; how to run the course"),
    ("01_data_preparation", "Data preparation", "VAD, log-mel features, face crops, the synthetic paired dataset"),
    ("02_voice_encoders", "Voice encoders", "the 1D-CNN and 1D-Inception encoders, shapes and receptive fields"),
    ("03_face_decoders", "Face decoders", "transposed convolutions vs GLU upsampling, the multi-resolution decoder"),
    ("04_embedding_fuser", "Embedding fuser", "attention over speech segments and what it weighs"),
    ("05_training", "Training", "losses, the face embedder, stage 1 and the fuser stage"),
    ("06_evaluation", "Evaluation", "VGGFace Score, retrieval recall, similarity and what they miss"),
    ("07_interactive_demo", "Interactive demo", "pick or record a voice, see the face, slide between speakers"),
    ("08_scaling_up", "Scaling up", "the paper recipe on HQ-VoxCeleb with several GPUs"),
)


@dataclass
class NotebookRun:
    """How one notebook of a course run went."""

    name: str
    status: str  # "ok", "failed" or "not run"
    seconds: float = 0.0
    output: str = ""
    error: str = ""
    # the execution count shown in the executed notebook (papermill's injected-parameters cell counts too)
    failed_cell: int | None = None


@dataclass
class CourseSummary:
    """The record of a course run, written next to the executed notebooks."""

    run_dir: str
    profile: str
    device: str
    notebooks: list[NotebookRun] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    results: str = ""

    def failure(self) -> NotebookRun | None:
        return next((nb for nb in self.notebooks if nb.status == "failed"), None)

    def to_markdown(self) -> str:
        rows = ["| notebook | status | seconds | note |", "|---|---|---|---|",
                *[f"| {nb.name} | {nb.status} | {nb.seconds:.1f} | {nb.error.splitlines()[0] if nb.error else ''} |"
                  for nb in self.notebooks]]
        total = sum(nb.seconds for nb in self.notebooks)
        passed = all(nb.status == "ok" for nb in self.notebooks)
        head = f"# Course run `{Path(self.run_dir).name}`\n\nprofile `{self.profile}`, device `{self.device}`, "
        head += f"{total:.0f} s in notebooks, {'all notebooks passed' if passed else 'FAILED'}\n\n"
        figures = "\n".join(f"- `{f}`" for f in self.figures) or "- (none)"
        return head + "\n".join(rows) + f"\n\n## Figures written\n{figures}\n"


def discover_notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks `NN_name.ipynb` of a folder, in course order."""
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))


def _new_run_dir(root: Path = RUNS_DIR) -> Path:
    """A fresh `runs/<YYYYmmdd-HHMMSS>` folder (suffixed when two runs start in the same second)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate, n = root / stamp, 1
    while candidate.exists():
        candidate, n = root / f"{stamp}-{n}", n + 1
    candidate.mkdir(parents=True)
    return candidate


def collect_results(run_dir: Path) -> str:
    """Gather every `results/*.csv` the notebooks wrote under `run_dir` into one Markdown document."""
    from sf2f.evaluate.report import markdown_table  # the evaluation package imports torch: only when a run ends

    sections = []
    for csv in sorted(run_dir.glob("*/results/*.csv")):
        table = pd.read_csv(csv)
        # a table saved with its index has an unnamed first column: the row labels
        table = table.rename(columns={c: "" for c in table.columns if str(c).startswith("Unnamed: ")})
        sections.append(f"## {csv.stem} ({csv.parent.parent.name})\n\n{markdown_table(table)}\n")
    body = "\n".join(sections) if sections else "No notebook of this run wrote a results table yet.\n"
    return f"# Results of course run `{run_dir.name}`\n\n{body}"


def _select(notebooks: list[Path], only: Sequence[str]) -> list[Path]:
    if not only:
        return notebooks
    chosen = [nb for nb in notebooks if any(nb.stem == o or nb.stem.startswith(f"{o}_") for o in only)]
    missing = [o for o in only if not any(nb.stem == o or nb.stem.startswith(f"{o}_") for nb in notebooks)]
    if missing:
        raise UsageError(f"no notebook matches {missing}; available: {[nb.stem for nb in notebooks]}")
    return chosen


def run_course(profile: str = "demo", data_root: str | Path = "", device: str = "auto",
               run_dir: str | Path | None = None, figures_dir: str | Path = "", only: Sequence[str] = (),
               notebook_dir: Path = NOTEBOOK_DIR, progress: bool = True) -> CourseSummary:
    """Execute the course notebooks in order; stop at the first failure. Returns (and writes) the summary."""
    import papermill  # Jupyter machinery: imported only when a course actually runs

    if profile not in PROFILES:
        raise UsageError(f"unknown profile '{profile}': choose one of {', '.join(PROFILES)}")
    notebooks = _select(discover_notebooks(notebook_dir), only)
    if not notebooks:
        raise MissingPathError(f"{notebook_dir}: no numbered notebooks (NN_name.ipynb) to run")
    out = Path(run_dir).resolve() if run_dir else _new_run_dir()
    out.mkdir(parents=True, exist_ok=True)
    summary = CourseSummary(run_dir=str(out), profile=profile, device=device)
    # record exactly what the notebooks train and evaluate with: every paper config, resolved under this profile
    for name in PAPER_CONFIGS:
        save_config(load_config(name, profile=profile), out / "configs" / f"{name}.yaml")
    figures_abs = str(Path(figures_dir).resolve()) if figures_dir else ""
    started = time.time()
    for notebook in notebooks:
        if summary.failure() is not None:
            summary.notebooks.append(NotebookRun(notebook.stem, "not run"))
            continue
        output = out / notebook.name
        # a batch run has no browser: no widget controls (`interactive`), whose text stand-ins would clutter it
        parameters = {"profile": profile, "data_root": str(Path(data_root).resolve()) if data_root else "",
                      "device": device, "output_dir": str(out / notebook.stem), "figures_dir": figures_abs,
                      "interactive": False}
        start = time.perf_counter()
        record = NotebookRun(notebook.stem, "ok", output=str(output))
        try:
            accepted = papermill.inspect_notebook(str(notebook))  # its parameters cell: pass only what it declares
            papermill.execute_notebook(str(notebook), str(output), cwd=str(notebook.parent), progress_bar=progress,
                                       parameters={k: v for k, v in parameters.items() if k in accepted},
                                       request_save_on_cell_execute=True)
        except Exception as exc:  # papermill raises PapermillExecutionError for a failing cell, others for set-up
            record.status = "failed"
            record.failed_cell = getattr(exc, "exec_count", None)
            ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
            cell = "before any cell ran"
            if record.failed_cell is not None:
                cell = f"cell [{record.failed_cell}] `{_cell_line(output, record.failed_cell)}`"
            record.error = f"{notebook.name}, {cell}: {ename}: {evalue}"
        record.seconds = time.perf_counter() - start
        summary.notebooks.append(record)

    roots = [out] + ([Path(figures_abs)] if figures_abs else [])
    summary.figures = sorted(_shown(p) for root in roots if root.exists() for p in root.rglob("*")
                             if p.suffix in (".png", ".jpg", ".svg", ".gif") and p.stat().st_mtime >= started)
    summary.results = str(out / "results.md")
    Path(summary.results).write_text(collect_results(out), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2), encoding="utf-8")
    (out / "summary.md").write_text(summary.to_markdown(), encoding="utf-8")
    return summary


def _cell_line(executed: Path, execution_count: int) -> str:
    """The first line of the executed cell with this count (papermill puts an error banner on top of a failed
    notebook, so cell indices shift; counts do not)."""
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells
    except (OSError, ValueError):
        return "?"
    source = next((cell.source for cell in cells if cell.get("execution_count") == execution_count), "?")
    return (source.strip().splitlines() or [""])[0][:80]


def _shown(path: Path) -> str:
    """A path as a reader wants it: relative to the repository when it lies inside it."""
    return str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)
