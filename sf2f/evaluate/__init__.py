"""Evaluation (recipe §4): the paper's metrics, exactly, and the ones it lacked, one module per concept (not imported
here: `evaluate_runs`, python -m sf2f evaluate, which loads checkpoints and trained embedders)."""

from sf2f.evaluate.attributes import AttributeProbe
from sf2f.evaluate.evaluator import SplitEvaluator
from sf2f.evaluate.probes import PROBE_MODES, make_probes
from sf2f.evaluate.report import results_table, write_results
from sf2f.evaluate.vggface_score import IdentityClassifier, inception_score

__all__ = ["PROBE_MODES", "AttributeProbe", "IdentityClassifier", "SplitEvaluator", "inception_score", "make_probes",
           "results_table", "write_results"]
