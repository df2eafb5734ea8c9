"""The attention fuser: N per-segment voice embeddings E of a speaker to one (recipe §2.2, `AttentionFuserV1`), by
"general" attention (Luong et al. 2015) of every segment to all the others, then a mean over the segments:

    Q = E W_in^T                      (B, N, D)   the projected queries; E serves as query and context
    A = softmax(Q E^T)                (B, N, N)   no 1/sqrt(D) scaling, as in the original
    M = A E                           (B, N, D)   each segment's attention-weighted mix of all segments
    O = [M, Q] W_out^T                (B, N, D_out)  the mix first, then the *projected* query; no tanh
    fused = mean_n O, L2-normalised   (B, D_out)

Both projections have no bias (786,432 parameters at D = 512). The original always has N = 20 segments; a mask (B, N)
marks the real ones for speakers with fewer, and padding never changes the output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AttentionFuser(nn.Module):
    """Self-attention over segment embeddings of width `dim`, then a (masked) mean over segments (§2.2);
    `normalize`: L2-normalise the fused embedding (`normalize_fusion: True` in every fuser config)."""

    def __init__(self, dim: int = 512, dim_out: int = 512, normalize: bool = True) -> None:
        super().__init__()
        self.linear_in = nn.Linear(dim, dim, bias=False)
        self.linear_out = nn.Linear(2 * dim, dim_out, bias=False)
        self.normalize = normalize

    def forward(self, emb: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Fuse (B, N, D) to (B, D_out); return it with the attention weights A (B, N, N). Padded segments (``mask``
        False) are zeroed first (so not even a NaN there can leak), masked out as context and left out of the mean."""
        if emb.dim() != 3:
            raise ValueError(f"the fuser expects segment embeddings (B, N, D), got shape {tuple(emb.shape)}")
        if mask is not None:
            mask = mask.to(device=emb.device, dtype=torch.bool)
            counts = mask.sum(dim=1)
            if bool((counts == 0).any()):
                empty = torch.nonzero(counts == 0).flatten().tolist()
                raise ValueError(f"the fuser needs at least one real segment per sample; samples {empty} have none")
            emb = emb.masked_fill(~mask[..., None], 0.0)
        query = self.linear_in(emb)
        scores = torch.bmm(query, emb.transpose(1, 2))
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        weights = scores.softmax(dim=-1)
        out = self.linear_out(torch.cat([torch.bmm(weights, emb), query], dim=-1))
        if mask is None:
            fused = out.mean(dim=1)
        else:
            fused = out.masked_fill(~mask[..., None], 0.0).sum(dim=1) / counts[:, None].to(out.dtype)
        return (F.normalize(fused, dim=1) if self.normalize else fused), weights
