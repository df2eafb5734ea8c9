"""Distractor stretches in the synthetic speech (issue 24): where they go, what they sound like, and that a dataset
with them differs from the clean one of the same seed only inside them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from sf2f.audio.vad import voice_activity
from sf2f.cli import main
from sf2f.config import load_config
from sf2f.data.synthetic import generate_dataset
from sf2f.data.synthetic.distractors import KINDS, LENGTH_S, MEASURED_SHARE, Distractor, distract, plan_distractors
from sf2f.data.synthetic.probe import median_pitch
from sf2f.data.synthetic.traits import draw_identities
from sf2f.data.synthetic.voices import DURATION_RANGE, draw_channel, synthesize_utterance
from sf2f.data.synthetic.writer import MARKER
from sf2f.errors import UsageError
from sf2f.shipped import data_fingerprint

SMALL = dict(identities=6, utterances=3, faces=2, seed=7)


def test_distractor_plans_put_whole_segments_inside_the_speech_second_voices_rarest() -> None:
    rng = np.random.default_rng(0)
    durations = rng.uniform(*DURATION_RANGE, 3000)
    plans = [plan_distractors(np.random.default_rng([5, k]), d, MEASURED_SHARE) for k, d in enumerate(durations)]
    # every utterance with room for the longest stretch draws them with the share; too short ones have none at all
    margins = 2 * 0.7
    roomy = [bool(p) for p, d in zip(plans, durations) if d >= LENGTH_S[1] + margins]
    assert abs(np.mean(roomy) - MEASURED_SHARE) < 0.05
    assert not any(p for p, d in zip(plans, durations) if d < LENGTH_S[0] + margins)
    for plan, duration in zip(plans, durations):
        for d in plan:
            assert LENGTH_S[0] - 1e-3 <= d.end_s - d.start_s <= LENGTH_S[1] + 1e-3 and 0.7 - 1e-3 <= d.start_s
            assert d.end_s <= duration - 0.7 + 1e-3, "the score speaks from 0.7 s to 0.7 s before the end"
        assert all(a.end_s <= b.start_s for a, b in itertools.pairwise(plan))
    counts = pd.Series([d.kind for p in plans for d in p]).value_counts()
    assert set(counts.index) == set(KINDS) and counts.idxmin() == "second voice"
    assert any(len(p) == 2 for p in plans)


@pytest.fixture(scope="module")
def distracted() -> dict[str, tuple[np.ndarray, Distractor]]:
    """One utterance of one person, clean and with a 2 s stretch of each kind (the same speech stream each time)."""
    person = draw_identities(3, 4)[1]
    channel = draw_channel(np.random.default_rng(1))
    out = {}
    for kind in ("clean", *KINDS):
        plan = [] if kind == "clean" else [Distractor(kind, 2.0, 4.0)]
        overlay = distract(plan, person, channel, np.random.default_rng(3))
        samples = synthesize_utterance(person, channel, np.random.default_rng(2), 6.5, overlay=overlay)
        out[kind] = (samples.astype(float), plan[0] if plan else None)
    return out


def test_a_distractor_changes_its_stretch_only_and_the_vad_keeps_it(distracted) -> None:
    clean = distracted["clean"][0]
    audio = load_config("sf2f_1st_stage").data.audio
    for kind in KINDS:
        samples, d = distracted[kind]
        a, b = int(d.start_s * 16000), int(d.end_s * 16000)
        outside = np.ones(clean.size, dtype=bool)
        outside[a:b] = False
        assert np.abs(samples - clean)[outside].max() <= 1, kind  # (16-bit rounding)
        assert np.abs(samples - clean)[a + 400 : b - 400].max() > 100, kind
        kept = voice_activity(samples.astype(np.int16), 16000, audio).sample_mask(clean.size)[a:b].mean()
        assert kept > 0.8, (kind, kept)


def _band_share(x: np.ndarray, lo: float, hi: float) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / 16000)
    return float(power[(f >= lo) & (f < hi)].sum() / power.sum())


def test_each_kind_of_distractor_sounds_like_what_it_is(distracted) -> None:
    clean = distracted["clean"][0][32000:64000]
    stretch = {kind: distracted[kind][0][32000 + 400 : 64000 - 400] for kind in KINDS}
    mid = clean[400:-400]
    # a telephone keeps 300-3400 Hz: almost nothing of the speech above 4 kHz or below 250 Hz is left
    assert _band_share(stretch["telephone"], 4000, 8000) < 0.2 * _band_share(mid, 4000, 8000)
    assert _band_share(stretch["telephone"], 0, 250) < 0.2 * _band_share(mid, 0, 250)
    # loud noise over the speech: the quietest 50 ms (the speaker's pauses) are no longer quiet
    quiet = {k: np.percentile(np.sqrt(np.mean(x[: x.size // 800 * 800].reshape(-1, 800) ** 2, axis=1)), 10)
             for k, x in (("clean", mid), ("noise", stretch["noise"]))}
    assert quiet["noise"] > 3 * quiet["clean"]
    # music, laughter and another voice replace the speaker: nothing of their speech is left in the stretch
    for kind in ("music", "laughter", "second voice"):
        assert abs(np.corrcoef(stretch[kind], mid)[0, 1]) < 0.2, kind
    # laughter is pitched far above the speaker's voice
    assert median_pitch(stretch["laughter"], fmax=900.0) > 1.3 * median_pitch(mid)




def test_a_share_of_zero_plans_nothing_and_a_share_outside_0_1_is_refused(tmp_path: Path) -> None:
    assert not any(plan_distractors(np.random.default_rng(k), 8.0, 0.0) for k in range(200))
    with pytest.raises(UsageError, match="distractors is a share of the utterances, in \\[0, 1\\], got 1.5"):
        generate_dataset(tmp_path / "never", **SMALL, distractors=1.5, progress=False)
    assert not (tmp_path / "never").exists()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same small dataset clean and with distractors in four of five utterances (the CLI makes the second)."""
    root = tmp_path_factory.mktemp("distractors")
    generate_dataset(root / "clean", **SMALL, workers=1, progress=False)
    args = [f"--{k}={v}" for k, v in SMALL.items()]
    assert main(["data", "synthetic", "--out", str(root / "noisy"), *args, f"--distractors={MEASURED_SHARE}",
                 "--workers=1", "--no-progress"]) in (0, None)
    return root / "clean", root / "noisy"


def test_only_the_listed_utterances_change_and_the_table_places_stretches_inside_them(pair) -> None:
    clean, noisy = pair
    table = pd.read_csv(noisy / "distractors.csv")
    assert list(table.columns) == ["file", "kind", "start_s", "end_s"] and set(table.kind) <= set(KINDS)
    assert not (clean / "distractors.csv").exists()
    for row in table.itertuples():
        assert 0.7 - 1e-3 <= row.start_s < row.end_s <= soundfile.info(noisy / row.file).duration - 0.7 + 1e-3, row
    files = sorted(p.relative_to(clean).as_posix() for p in clean.rglob("*") if p.suffix in (".wav", ".jpg"))
    changed = {f for f in files if (clean / f).read_bytes() != (noisy / f).read_bytes()}
    assert changed == set(table.file), "every utterance without a stretch (and every face) keeps its clean bytes"


def test_the_marker_records_the_share_and_an_older_clean_marker_is_still_reused(pair, tmp_path: Path) -> None:
    clean, noisy = pair
    assert json.loads((noisy / MARKER).read_text())["params"]["distractors"] == MEASURED_SHARE
    marker = json.loads((clean / MARKER).read_text())
    del marker["params"]["distractors"]  # as written before the option existed
    (clean / MARKER).write_text(json.dumps(marker))
    assert generate_dataset(clean, **SMALL, workers=1, progress=False).status == "reused"
    with pytest.raises(Exception, match="distractors: 0.0 on disk, 0.8 asked"):
        generate_dataset(clean, **SMALL, distractors=0.8, workers=1, progress=False)


def test_the_data_fingerprint_tells_the_datasets_apart() -> None:
    data = load_config("sf2f_1st_stage", profile="long").data
    noisy = load_config("sf2f_1st_stage", profile="long", overrides=["data.synthetic.distractors=0.8"]).data
    assert data_fingerprint(data) != data_fingerprint(noisy)
