"""1:2 voice-to-face matching accuracy (beyond the SF2F paper; the forced-choice protocol of voice2face).

For a probe voice of identity i (here: the embedding p_i of the face generated from it) and two real faces, one of i
and one of another identity j, the choice is right when i's face is closer to the generated face in embedding space
(cosine similarity). The accuracy runs over all ordered pairs (i, j), i != j, or over a seeded sample of them; a tie
counts one half. Chance is 0.5.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["matching_accuracy"]


def matching_accuracy(probes: Tensor, faces: Tensor, max_pairs: int | None = None, seed: int = 0) -> float:
    """Share of ordered pairs (i, j), i != j, for which face i is closer to probe i than face j is.

    `probes` (n, D): one embedding per identity of the generated face; `faces` (n, D): one real face's embedding per
    identity. `max_pairs` draws that many pairs (without replacement, seeded) instead of all n (n - 1).
    """
    if probes.dim() != 2 or probes.shape != faces.shape:
        raise ValueError(f"probes {tuple(probes.shape)} and faces {tuple(faces.shape)} must both be (n, D)")
    n = probes.shape[0]
    if n < 2:
        raise ValueError("1:2 matching needs at least two identities")
    table = F.normalize(probes.double(), dim=1) @ F.normalize(faces.double(), dim=1).T
    # outcome[i, j]: 1 when the own face wins, 0.5 on a tie, 0 when the other face wins
    outcome = (table.diagonal()[:, None] > table).double() + 0.5 * (table.diagonal()[:, None] == table).double()
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=table.device)
    if max_pairs is None or max_pairs >= n * (n - 1):
        return float(outcome[off_diagonal].mean())
    flat = np.flatnonzero(off_diagonal.cpu().numpy().ravel())
    chosen = np.random.default_rng(seed).choice(flat, size=max_pairs, replace=False)
    return float(outcome.flatten()[torch.from_numpy(chosen).to(table.device)].mean())
