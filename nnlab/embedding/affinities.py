"""The input similarities of t-SNE: P from distances, one Gaussian per point calibrated to a
perplexity by binary search, then symmetrised (van der Maaten & Hinton, 2008, eq. 1 and 2).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]


def _as_matrix(X: ArrayLike, dtype=torch.float64, device=None, name: str = "X") -> torch.Tensor:
    """``X`` as a ``(N, D)`` tensor; images ``(N, C, H, W)`` (or any ``(N, ...)``) are flattened.

    ``ValueError`` naming ``name`` for a wrong shape, a non-numeric array or NaN / infinite values."""
    try:
        X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"expected {name} to be a numeric array of shape (N, D), got {type(X).__name__} "
                        f"({err})") from None
    if X.dtype == torch.bool or X.is_complex():
        raise TypeError(f"expected {name} to hold real numbers, got dtype {X.dtype}")
    if X.ndim < 2 or X.shape[0] < 2 or X[0].numel() == 0:
        raise ValueError(f"expected {name} of shape (N, D) with N >= 2 points (or images (N, C, H, W)), "
                         f"got shape {tuple(X.shape)}")
    X = X.detach().reshape(X.shape[0], -1).to(device=device, dtype=dtype)
    finite = torch.isfinite(X)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        row = int((~finite).any(1).nonzero()[0])
        raise ValueError(f"expected {name} to be finite, got {bad} NaN or infinite values (first in row {row})")
    return X


def _row_chunk(n: int, elements: int = 1 << 21) -> int:
    """How many rows of an (n, n) matrix to process at once (about ``elements`` entries per chunk)."""
    return max(1, min(n, elements // max(n, 1)))


# =========================================================================== 1. affinities P (input space)
def squared_distances(X: ArrayLike, Y: Optional[ArrayLike] = None) -> torch.Tensor:
    """Squared euclidean distances ``|x_i - y_j|^2``, shape ``(N, M)`` (``Y`` defaults to ``X``), float64.

    Uses ``|x|^2 + |y|^2 - 2 x.y`` (one matrix product), as scikit-learn's ``pairwise_distances(squared=True)``;
    the diagonal is exactly 0 when ``Y`` is ``X``.
    """
    X = _as_matrix(X)
    Yt = X if Y is None else _as_matrix(Y)
    d2 = (X * X).sum(1, keepdim=True) + (Yt * Yt).sum(1) - 2 * X @ Yt.T
    d2.clamp_(min=0)
    if Y is None:
        d2.fill_diagonal_(0)
    return d2


def _binary_search_rows(d2: torch.Tensor, offset: int, perplexity: float, tol: float, max_steps: int):
    """Conditional probabilities for the rows ``i = offset .. offset + B - 1``, from their squared distances
    ``d2 (B, N)`` to all points. Returns ``(p_cond (B, N), beta (B,), entropy_bits (B,))``.

    Binary search of each row's precision ``beta_i = 1 / (2 sigma_i^2)``, as scikit-learn's
    ``_binary_search_perplexity`` (start at 1; double or halve until the target is bracketed, then bisect), but
    vectorised over rows, with the entropy in bits: stop when ``|H(P_i) - log2(perplexity)| <= tol``.
    """
    B, n = d2.shape
    rows = torch.arange(B, device=d2.device)
    me = rows + offset                                        # column of each row's own point
    # Subtracting each row's nearest distance changes no p_{j|i} (it cancels in the normalisation) but keeps
    # exp() from underflowing to 0 for far-away data.
    d = d2.clone()
    d[rows, me] = math.inf
    d -= d.min(dim=1, keepdim=True).values
    d[rows, me] = 0.0
    target = math.log2(perplexity)
    p = torch.empty_like(d)
    beta_out = torch.empty(B, dtype=d.dtype, device=d.device)
    entropy = torch.empty_like(beta_out)
    # the working set: rows still searching (finished ones are dropped from it now and then)
    work = rows
    beta = torch.ones(B, dtype=d.dtype, device=d.device)
    beta_min = torch.full_like(beta, -math.inf)
    beta_max = torch.full_like(beta, math.inf)
    active = torch.ones(B, dtype=torch.bool, device=d.device)
    e = torch.empty_like(d)
    for step in range(max_steps):
        m = len(work)
        e = torch.mul(d, -beta[:, None], out=e[:m]).exp_()      # exp(-beta_i d_ij^2) ...
        e[torch.arange(m), me[work]] = 0.0                       # ... and a point is not its own neighbour
        z = e.sum(1)
        # H = -sum p log p with p = e / z and log e = -beta d:  H = log z + beta sum(e d) / z   (nats; / ln 2: bits)
        h = (torch.log(z) + beta * torch.linalg.vecdot(e, d) / z) / math.log(2)
        diff = h - target
        finished = active & ((diff.abs() <= tol) | (step == max_steps - 1))   # out of steps: keep the last p
        if finished.any():
            i = work[finished]
            p[i] = e[finished] / z[finished, None]
            beta_out[i], entropy[i] = beta[finished], h[finished]
            active &= ~finished
        if not active.any():
            break
        too_flat = diff > 0                                      # entropy too high: sharpen (larger beta)
        beta_min = torch.where(too_flat, beta, beta_min)
        beta_max = torch.where(too_flat, beta_max, beta)
        up = torch.where(torch.isinf(beta_max), beta * 2, (beta + beta_max) / 2)
        down = torch.where(torch.isinf(beta_min), beta / 2, (beta + beta_min) / 2)
        beta = torch.where(active, torch.where(too_flat, up, down), beta)
        if active.sum() < 0.75 * m:                              # drop finished rows from the working set
            work, d, beta, beta_min, beta_max = work[active], d[active], beta[active], beta_min[active], beta_max[active]
            active = active[active]
    return p, beta_out, entropy


def conditional_probabilities(X: ArrayLike, perplexity: float = 30.0, *, tol: float = 1e-5, max_steps: int = 100,
                              distances: Optional[torch.Tensor] = None):
    """``p_{j|i}``: row ``i`` is a Gaussian around ``x_i`` whose width gives it the requested perplexity.

    Args:
        X: data ``(N, D)`` (or ``(N, C, H, W)`` images, flattened).
        perplexity: target ``Perp(P_i) = 2^H(P_i)``, about the number of neighbours each point cares about.
        tol: tolerance on the entropy ``H`` in bits; ``max_steps``: binary-search steps at most.
        distances: optional precomputed squared distances ``(N, N)`` (then ``X`` is only used for ``N``).

    Returns:
        ``(P_cond, beta)``: ``P_cond`` float64 ``(N, N)``, rows sum to 1, zero diagonal; ``beta`` ``(N,)`` the
        precisions ``1 / (2 sigma_i^2)``.

    Example::

        P_cond, beta = conditional_probabilities(X, 30)
        perplexity_of(P_cond)        # all within 2^(+-1e-5) of 30
    """
    X = _as_matrix(X)
    n = X.shape[0]
    if not 0 < perplexity < n:
        raise ValueError(f"perplexity ({perplexity}) must be in (0, N) with N = {n} points")
    P_cond = torch.empty(n, n, dtype=torch.float64)
    beta = torch.empty(n, dtype=torch.float64)
    step = _row_chunk(n, 1 << 22)
    sq = (X * X).sum(1)
    for s in range(0, n, step):
        e = min(s + step, n)
        if distances is None:
            d2 = (sq[s:e, None] + sq[None, :] - 2 * X[s:e] @ X.T).clamp_(min=0)
        else:
            d2 = torch.as_tensor(distances)[s:e].to(torch.float64).clone()
        P_cond[s:e], beta[s:e], _ = _binary_search_rows(d2, s, perplexity, tol, max_steps)
    return P_cond, beta


def perplexity_of(P_cond: torch.Tensor) -> torch.Tensor:
    """``Perp(P_i) = 2^H(P_i)`` of each row of a conditional probability matrix, ``(N, N) -> (N,)``."""
    P_cond = torch.as_tensor(P_cond, dtype=torch.float64)
    H = -torch.special.xlogy(P_cond, P_cond).sum(1) / math.log(2)     # bits; 0 log 0 = 0
    return 2 ** H


def _symmetrize_(P_cond: torch.Tensor) -> torch.Tensor:
    """In place: ``P <- (P + P^T) / 2N``, one block of rows at a time (no second ``(N, N)`` matrix)."""
    n = P_cond.shape[0]
    step = _row_chunk(n, 1 << 22)
    for s in range(0, n, step):
        e = min(s + step, n)
        # pairs (i, j) with i in [s, e) and j >= s; every earlier block already wrote the pairs with min(i, j) < s
        avg = (P_cond[s:e, s:] + P_cond[s:, s:e].T) / (2 * n)
        P_cond[s:e, s:] = avg
        P_cond[s:, s:e] = avg.T
    return P_cond


def joint_probabilities(X: ArrayLike, perplexity: float = 30.0, *, tol: float = 1e-5, max_steps: int = 100,
                        distances: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The t-SNE affinities ``p_ij = (p_{j|i} + p_{i|j}) / 2N``: symmetric ``(N, N)`` float64, zero diagonal, sum 1.

    Equal (to about 1e-8) to scikit-learn's ``_joint_probabilities`` on ``pairwise_distances(X, squared=True)``:
    both use squared euclidean distances and the same binary search on ``beta = 1 / (2 sigma^2)``.
    See :func:`conditional_probabilities` for the arguments. Van der Maaten & Hinton (2008), section 3.

    Example::

        P = joint_probabilities(X, perplexity=30)    # X: (N, D)
        P.sum()                                      # 1
    """
    P_cond, _ = conditional_probabilities(X, perplexity, tol=tol, max_steps=max_steps, distances=distances)
    return _symmetrize_(P_cond)
