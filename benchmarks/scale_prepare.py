"""The data pipeline at the real data's identity count (issue 25): generate, prepare, kill, resume, compare.

`python -m benchmarks.scale_prepare --identities 4000 --utterances 15 --work /big/disk/scale` does, in order:

1. writes a synthetic dataset of that size in the real layout (`python -m sf2f data synthetic`), or reuses one;
2. prepares it (`python -m sf2f prepare`) and measures the wall time, the CPU time of every process, the peak memory
   summed over the processes, and the disk of the raw and the prepared data;
3. prepares it again into a second folder, kills that run (its whole process group, as a crash or a scheduler
   would) while it featurises the identities, resumes it, and checks the result is byte-identical to the
   uninterrupted run's; then the same with a kill while it packs the splits.

Peak memory is given twice: *anonymous* memory (what the processes allocate; what must fit in RAM), and the resident
set including mapped files. Packing writes each split through a memory-mapped .npy, whose pages count as resident
while they wait for the disk but are page cache the kernel can write back and drop, so only the first figure has to
fit. Not part of `make benchmark` (it needs about 15 GB of disk and half an hour at 4,000 identities on 2 cores).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class _PeakMemory:
    """Samples a process tree every 0.5 s: the peak summed anonymous and resident memory."""

    def __init__(self, process: psutil.Process) -> None:
        self.peak_anon = self.peak_rss = 0
        self._root, self._done = process, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.5):
            anon = rss = 0
            for p in _tree(self._root):
                try:
                    mem = p.memory_info()
                except psutil.NoSuchProcess:
                    continue
                anon += mem.rss - mem.shared  # Linux: shared = file-backed + shmem pages
                rss += mem.rss
            self.peak_anon, self.peak_rss = max(self.peak_anon, anon), max(self.peak_rss, rss)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _sf2f(args: list[str], kill_when: Callable[[], bool] | None = None) -> tuple[float, float, _PeakMemory, bool]:
    """Run `python -m sf2f ARGS` in its own process group, killing the group once `kill_when()` holds; wall seconds,
    CPU seconds of it and every process it waited for (its workers), peak memory, and whether it was killed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe nobody reads while the run goes on
        child = subprocess.Popen([sys.executable, "-m", "sf2f", *args], start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        memory, killed = _PeakMemory(psutil.Process(child.pid)), False
        while child.poll() is None:
            if kill_when is not None and not killed and kill_when():
                os.killpg(child.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.1)
        memory.stop()
        if child.returncode != 0 and not killed:
            stderr.seek(0)
            raise SystemExit(f"python -m sf2f {' '.join(args)} failed:\n{stderr.read()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - start, cpu, memory, killed


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _same_tree(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files == theirs and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=4000)
    parser.add_argument("--utterances", type=int, default=15, help="per identity (VoxCeleb has more, and longer)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the data (about 3.5 GB per 1,000 ids)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", action="store_true", help="keep the resumed copy as well")
    args = parser.parse_args(argv)
    raw, full, resumed = args.work / "synthetic", args.work / "prepared", args.work / "prepared_resumed"
    for folder in (full, resumed):
        shutil.rmtree(folder, ignore_errors=True)
    per_k = 1000.0 / args.identities

    reused = (raw / "synthetic.json").is_file()  # the generator then only checks it
    wall, cpu, _, _ = _sf2f(["data", "synthetic", "--out", str(raw), "--identities", str(args.identities),
                             "--utterances", str(args.utterances), "--workers", str(args.workers), "--no-progress"])
    raw_gb = _size(raw) / 1e9
    print(f"generate{' (reused)' if reused else ''}: {wall:.0f} s wall, {cpu:.0f} CPU-s, raw data {raw_gb:.2f} GB "
          f"({raw_gb * per_k:.2f} GB per 1,000 identities)")

    prepare = ["prepare", "--data-root", str(raw), "--workers", str(args.workers), "--no-progress", "--out"]
    wall, cpu, memory, _ = _sf2f([*prepare, str(full)])
    cache_gb = _size(full) / 1e9
    print(f"prepare: {wall:.0f} s wall ({wall * per_k:.0f} s per 1,000 identities), {cpu:.0f} CPU-s "
          f"({cpu * per_k:.0f} per 1,000), peak memory {memory.peak_anon / 2**30:.2f} GiB anonymous, "
          f"{memory.peak_rss / 2**30:.2f} GiB resident with mapped files; cache {cache_gb:.2f} GB "
          f"({cache_gb * per_k:.2f} GB per 1,000 identities)")

    # killed once while featurising (half the identities' parts written) and once while packing (a split's file
    # half-written: the temporary files of sf2f.paths.atomic_path)
    stages = {"featurising": lambda: len(list((resumed / "parts").glob("*.npz"))) >= args.identities // 2,
              "packing": lambda: any(any((resumed / split).glob(".*.part")) for split in ("train", "val", "test"))}
    for stage, moment in stages.items():
        shutil.rmtree(resumed, ignore_errors=True)
        _, _, _, killed = _sf2f([*prepare, str(resumed)], kill_when=moment)
        parts = len(list((resumed / "parts").glob("*.npz")))
        wall, _, _, _ = _sf2f([*prepare, str(resumed)])
        same = _same_tree(full, resumed)
        print(f"killed while {stage}: {killed}, with {parts} of {args.identities} identities' parts written; the "
              f"resumed run took {wall:.0f} s and its cache is {'byte-identical to' if same else 'DIFFERENT from'} "
              "the uninterrupted run's")
        if not (killed and same):
            raise SystemExit(f"kill-and-resume check failed: compare {full} with {resumed}")
    if not args.keep:
        shutil.rmtree(resumed)


if __name__ == "__main__":
    main()
