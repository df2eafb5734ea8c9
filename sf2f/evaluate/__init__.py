"""Evaluation (recipe §4): the paper's metrics, exactly, and the ones it lacked.

One module per concept:

    inception_score.py  the Inception-Score formula (5 splits, seeded shuffle) shared by the two scores below
    vggface_score.py    the VGGFace Score: Caffe-style ResNet-50 `resnet50_ft`, its weights read safely (§4.1)
    safe_pickle.py      reading a pickle of numpy arrays through an allow-list (no code runs)
    identity_score.py   the ID-classifier score that stands in for the VFS on the synthetic data
    embeddings.py       the FaceNet pipeline F(.), the split's real faces and the gallery (§4.2)
    probes.py           generated faces per identity in the three probe modes, deterministic (§4.2)
    retrieval.py        L2 / L1 / cosine, recall at K in groups and over the split, inter-human similarity (§4.2)
    matching.py         1:2 voice-to-face matching accuracy (voice2face's protocol)
    significance.py     is a model above chance at all, or better than another? permutation and paired tests
    segments_curve.py   how much speech a face needs: metrics over 1..20 segments, plain mean vs the fuser
    fid.py              Fréchet distance in the embedder's space, and with the Inception network when present (§4.4)
    diversity.py        LPIPS between faces from different segments of one speaker, when its weights are present (§4.5)
    attributes.py       do generated faces carry the speaker's sex, age and size (synthetic data)
    evaluator.py        SplitEvaluator: all of the above for a Generator on a prepared split
    report.py           the results table (CSV and Markdown) with reference rows and the paper's numbers
    evaluate_runs.py    trained checkpoints to that table (python -m sf2f evaluate); the evaluator a dataset allows

    (evaluate_runs.py is imported as `sf2f.evaluate.evaluate_runs`: it loads checkpoints and trained embedders, so the
    package does not import it)

    from sf2f.evaluate import SplitEvaluator, results_table, write_results
"""

from sf2f.evaluate.attributes import AttributeProbe
from sf2f.evaluate.evaluator import SplitEvaluator, mean_face
from sf2f.evaluate.identity_score import IdentityClassifier
from sf2f.evaluate.inception_score import SplitScore, inception_score
from sf2f.evaluate.probes import PROBE_MODES, ProbeSet, make_probes
from sf2f.evaluate.report import PAPER_VFS, results_table, write_results
from sf2f.evaluate.vggface_score import VGGFaceClassifier, VGGFaceResNet50, load_vggface_resnet50

__all__ = [
    "PAPER_VFS",
    "PROBE_MODES",
    "AttributeProbe",
    "IdentityClassifier",
    "ProbeSet",
    "SplitEvaluator",
    "SplitScore",
    "VGGFaceClassifier",
    "VGGFaceResNet50",
    "inception_score",
    "load_vggface_resnet50",
    "make_probes",
    "mean_face",
    "results_table",
    "write_results",
]
