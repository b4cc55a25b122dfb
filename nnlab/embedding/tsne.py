"""t-SNE from its formulas: affinities in the input space, then an embedding that matches them.

t-SNE (van der Maaten & Hinton, 2008, https://jmlr.org/papers/v9/vandermaaten08a.html) has two halves, kept
apart here as openTSNE keeps ``affinity.py`` apart from ``TSNEEmbedding.optimize``:

1. **Affinities** ``P`` of the data ``X`` (N points), computed once (:func:`joint_probabilities`)::

       p_{j|i} = exp(-beta_i |x_i - x_j|^2) / sum_{k != i} exp(-beta_i |x_i - x_k|^2)     (beta_i = 1 / 2 sigma_i^2)
       Perp(P_i) = 2^H(P_i),   H(P_i) = -sum_j p_{j|i} log2 p_{j|i}                      (binary search on beta_i)
       p_ij = (p_{j|i} + p_{i|j}) / 2N

2. **Embedding** ``Y`` (N points in 2-D), moved by gradient descent so that ``Q`` matches ``P``::

       q_ij = (1 + |y_i - y_j|^2)^-1 / sum_{k != l} (1 + |y_k - y_l|^2)^-1                (Student-t, 1 dof)
       KL(P || Q) = sum_{i != j} p_ij log(p_ij / q_ij)
       dKL/dy_i = 4 sum_j (p_ij - q_ij) (y_i - y_j) (1 + |y_i - y_j|^2)^-1

The small functions below (:func:`conditional_probabilities`, :func:`q_probabilities`, :func:`kl_divergence`,
:func:`kl_gradient`) are these formulas written out on dense ``(N, N)`` tensors. :class:`TSNE` runs the same
computation in row chunks, so memory stays bounded and each iteration is a handful of vectorised torch
operations, with scikit-learn's default optimiser (early exaggeration, momentum, gains).

Example::

    from nnlab.embedding import TSNE, joint_probabilities
    P = joint_probabilities(X, perplexity=30)          # (N, N), rows of P_cond have perplexity 30
    tsne = TSNE(perplexity=30, random_state=0, history_every=10)
    Y = tsne.fit_transform(X)                           # (N, 2) numpy array, like scikit-learn
    tsne.kl_divergence_, len(tsne.history_)
"""
from __future__ import annotations

import math
import os
import time
from typing import Callable, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from nnlab.embedding.affinities import (
    ArrayLike,
    _as_matrix,
    _row_chunk,
    joint_probabilities,
)



#: ``TSNE(method="auto")`` runs the exact method (this module) up to this many points and hands larger data sets
#: to openTSNE (Barnes-Hut or FFT-accelerated), whose cost grows like N log N instead of N^2. Measured on MNIST
#: (bench/bench_tsne.py, one thread): the exact method is about as fast as openTSNE at N = 2,500 (with a 2-3% lower
#: KL) and twice as slow at N = 5,000.
EXACT_MAX_N = 3000




# =========================================================================== 2. the embedding Y (output space)
def student_t(Y: torch.Tensor) -> torch.Tensor:
    """Student-t kernel ``w_ij = (1 + |y_i - y_j|^2)^-1`` with ``w_ii = 0``: ``(N, d) -> (N, N)``."""
    Y = torch.as_tensor(Y)
    w = 1 / (1 + torch.cdist(Y, Y, compute_mode="donot_use_mm_for_euclid_dist") ** 2)
    return w.fill_diagonal_(0)


def q_probabilities(Y: torch.Tensor) -> torch.Tensor:
    """``q_ij = w_ij / sum_{k != l} w_kl``, the embedding's affinities: ``(N, d) -> (N, N)``, sums to 1."""
    w = student_t(Y)
    return w / w.sum()


def kl_divergence(P: torch.Tensor, Y: torch.Tensor) -> float:
    """``KL(P || Q) = sum_{i != j} p_ij log(p_ij / q_ij)`` for affinities ``P (N, N)`` and embedding ``Y (N, d)``.

    Computed in row chunks (memory ``O(N)`` per chunk), so it also scores embeddings of thousands of points, e.g.
    those of other libraries on the same ``P``.
    """
    P = torch.as_tensor(P)
    Y = torch.as_tensor(Y).to(P.dtype)
    return _Objective(P, dtype=P.dtype)(Y, compute_kl=True, compute_grad=False)[0]


def kl_gradient(P: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``dKL/dy_i = 4 sum_j (p_ij - q_ij) (y_i - y_j) (1 + |y_i - y_j|^2)^-1``: ``(N, N), (N, d) -> (N, d)``.

    The formula on dense tensors. With ``W = (P - Q) * w`` the sum is ``4 (W.sum(1) y_i - (W @ Y)_i)``.
    """
    P, Y = torch.as_tensor(P), torch.as_tensor(Y).to(torch.as_tensor(P).dtype)
    w = student_t(Y)
    Q = w / w.sum()
    W = (P - Q) * w
    return 4 * (W.sum(1, keepdim=True) * Y - W @ Y)


class _Objective:
    """KL(P || Q) and its gradient, computed in chunks of rows of the ``(N, N)`` matrices.

    Same numbers as :func:`kl_gradient` (with the early-exaggeration factor ``alpha`` on P), rearranged so that one
    pass over the pairs suffices although ``Q`` needs the normaliser ``Z = sum w`` of *all* pairs::

        grad_i = 4 sum_j (alpha p_ij - w_ij / Z) w_ij (y_i - y_j)
               = 4 [ alpha sum_j p_ij w_ij (y_i - y_j)  -  (1/Z) sum_j w_ij^2 (y_i - y_j) ]
        KL     = sum p log p  +  sum p_ij log(1 + |y_i - y_j|^2)  +  log Z        (when sum p = 1)

    Each ``sum_j a_ij (y_i - y_j)`` is ``a.sum(1) y_i - a @ Y``: one matrix product with ``[1, Y]``, and
    ``1 + |y_i - y_j|^2 = [y_i, |y_i|^2, 1] . [-2 y_j, 1, 1 + |y_j|^2]`` is one matrix product too. The buffers are
    allocated once (allocating a big tensor costs more than the arithmetic on it).
    """

    def __init__(self, P: torch.Tensor, dtype=torch.float32, chunk_elements: int = 1 << 20):
        self.P = P.to(dtype)
        self.n = P.shape[0]
        self.rows = _row_chunk(self.n, chunk_elements)
        self.buf_w = torch.empty(self.rows, self.n, dtype=dtype, device=P.device)
        self.buf_a = torch.empty_like(self.buf_w)
        P64 = P.to(torch.float64)
        self.sum_P = float(P64.sum())
        self.P_log_P = float(torch.special.xlogy(P64, P64).sum())

    def __call__(self, Y: torch.Tensor, alpha: float = 1.0, compute_kl: bool = True, compute_grad: bool = True):
        n, P = self.n, self.P
        sq = (Y * Y).sum(1, keepdim=True)
        ones = torch.ones_like(sq)
        left = torch.cat([Y, sq, ones], 1)
        right = torch.cat([-2 * Y, ones, 1 + sq], 1)
        ones_Y = torch.cat([ones, Y], 1).T.contiguous()      # (1 + d, N): [1, Y]^T a^T = [a.sum(1), a @ Y]^T
        Z, P_log_1pd = 0.0, 0.0
        attract = torch.empty(ones_Y.shape[0], n, dtype=Y.dtype, device=Y.device)   # rows: [sum_j a_ij, (a @ Y)^T]
        repulse = torch.empty_like(attract)
        for s in range(0, n, self.rows):
            e = min(s + self.rows, n)
            w, a = self.buf_w[: e - s], self.buf_a[: e - s]
            torch.mm(left[s:e], right.T, out=w)                            # 1 + |y_i - y_j|^2
            if compute_kl:
                P_log_1pd += float(torch.log(w, out=a).mul_(P[s:e]).sum())
            w.reciprocal_()                                                 # w_ij = (1 + |y_i - y_j|^2)^-1
            w.diagonal(s).zero_()                                           # (no pair i = i)
            Z += float(w.sum())
            if compute_grad:
                attract[:, s:e] = ones_Y @ torch.mul(P[s:e], w, out=a).T      # from p_ij w_ij
                repulse[:, s:e] = ones_Y @ w.square_().T                       # from w_ij^2
        kl = self.P_log_P + P_log_1pd + self.sum_P * math.log(Z) if compute_kl else math.nan
        if not compute_grad:
            return kl, None
        pull = attract[0, :, None] * Y - attract[1:].T          # sum_j p_ij w_ij (y_i - y_j)
        push = repulse[0, :, None] * Y - repulse[1:].T          # sum_j w_ij^2 (y_i - y_j)
        return kl, 4 * (alpha * pull - push / Z)


def pca(X: ArrayLike, n_components: int = 50) -> torch.Tensor:
    """Projection of the centred data on its first ``n_components`` principal axes: ``(N, D) -> (N, k)`` float64.

    Signs are fixed as scikit-learn's ``PCA`` does (each axis' largest loading is positive), so the result equals
    ``sklearn.decomposition.PCA(n_components).fit_transform(X)`` up to rounding. The usual first step before
    t-SNE (50 dimensions keep most of the structure and remove pixel noise).
    """
    X = _as_matrix(X)
    Xc = X - X.mean(0)
    _, V = torch.linalg.eigh(Xc.T @ Xc)                 # eigenvectors of the covariance, smallest variance first
    V = V.flip(1)[:, :n_components]                      # principal axes, (D, k)
    V = V * torch.sign(V[V.abs().argmax(0), torch.arange(V.shape[1])])
    return Xc @ V


def pca_init(X: ArrayLike, n_components: int = 2, std: float = 1e-4) -> torch.Tensor:
    """PCA initialisation as scikit-learn's ``TSNE(init="pca")``: :func:`pca` of ``X``, scaled so that column 0
    has standard deviation ``std`` (that of a random initialisation). ``(N, D) -> (N, n_components)`` float64."""
    Y = pca(X, n_components)
    spread = Y[:, 0].std(unbiased=False)
    if float(spread) <= 1e-12 * max(1.0, float(Y.abs().max())):
        # all points identical (column 0 carries the most variance, so every column is zero): one place for all
        return torch.zeros_like(Y)
    return Y / spread * std


class TSNEStep(NamedTuple):
    """One frame of :attr:`TSNE.history_`: iteration count, embedding ``(N, d)`` numpy, KL (nan if not computed)."""
    iteration: int
    embedding: np.ndarray
    kl: float


class TSNE:
    """t-distributed Stochastic Neighbor Embedding, with scikit-learn's defaults and API.

    Van der Maaten & Hinton (2008), "Visualizing Data using t-SNE", JMLR 9,
    https://jmlr.org/papers/v9/vandermaaten08a.html. Optimiser as scikit-learn's ``TSNE`` (exaggeration 12 for
    250 iterations with momentum 0.5, then momentum 0.8; gains +0.2 / x0.8 floored at 0.01; learning rate
    ``"auto" = max(N / early_exaggeration / 4, 50)``; PCA initialisation; progress checked every 50 iterations,
    stopping after ``n_iter_without_progress`` iterations without a lower KL or when the gradient norm falls
    below ``min_grad_norm``).

    Args:
        n_components: dimension of the embedding (the kernel is a Student-t with one degree of freedom for all).
        perplexity: effective number of neighbours (see :func:`joint_probabilities`).
        early_exaggeration, early_exaggeration_iter: P is multiplied by this factor for the first iterations.
        learning_rate: ``"auto"`` or a number (scikit-learn's convention, 4x openTSNE's).
        max_iter: total number of iterations (scikit-learn >= 1.5 calls it ``max_iter``, older ``n_iter``).
        init: ``"pca"``, ``"random"`` (Gaussian, std 1e-4) or an ``(N, n_components)`` array.
        method: ``"exact"`` (this module, O(N^2) per iteration) or ``"auto"``: exact up to :data:`EXACT_MAX_N`
            points, openTSNE above (same perplexity, exaggeration, momentum and iteration schedule).
        random_state: seed for ``init="random"`` and openTSNE.
        dtype: precision of the optimisation (P is always computed in float64). float32 (default) is twice as
            fast; near convergence, where attraction and repulsion almost cancel, its gradient is accurate to a few
            percent per point only, which moves the final KL by about 0.3% (MNIST, N = 1,000). float64 gives the
            exact gradient.
        device: torch device for the optimisation (``"cuda"`` if you have one; default CPU).
        history_every: keep a :class:`TSNEStep` every this many iterations in ``history_`` (for animations).
        callbacks, callbacks_every_iters: ``callback(iteration, kl, embedding) -> bool`` called every
            ``callbacks_every_iters`` iterations (openTSNE's signature); returning ``True`` stops the optimisation.
        n_jobs: CPU threads used during ``fit`` (``-1``: all cores; default 1, as openTSNE). One thread is the
            fastest choice on a busy or small machine, where threads mostly wait for each other.
        progress: show a tqdm progress bar.

    Attributes after ``fit``: ``embedding_ (N, d)`` numpy, ``kl_divergence_`` (KL of the final embedding;
    openTSNE's own estimate when it ran), ``n_iter_`` (iterations run), ``learning_rate_``, ``P_`` (the affinities,
    exact method only), ``history_`` (list of :class:`TSNEStep`), ``method_`` (``"exact"`` or ``"opentsne"``).

    Example::

        tsne = TSNE(perplexity=30, random_state=0, history_every=10)
        Y = tsne.fit_transform(X)                     # X: (N, D) -> Y: (N, 2)
        print(tsne.kl_divergence_, tsne.n_iter_)
    """

    _N_ITER_CHECK = 50

    def __init__(self, n_components: int = 2, *, perplexity: float = 30.0, early_exaggeration: float = 12.0,
                 early_exaggeration_iter: int = 250, learning_rate: Union[str, float] = "auto", max_iter: int = 1000,
                 n_iter_without_progress: int = 300, min_grad_norm: float = 1e-7, min_gain: float = 0.01,
                 init: Union[str, np.ndarray] = "pca", method: str = "exact", random_state: Optional[int] = None,
                 dtype: torch.dtype = torch.float32, device: Optional[Union[str, torch.device]] = None,
                 history_every: Optional[int] = None, callbacks: Optional[Union[Callable, Sequence[Callable]]] = None,
                 callbacks_every_iters: int = 50, n_jobs: Optional[int] = 1, progress: bool = False, verbose: int = 0):
        self.n_components = n_components
        self.perplexity = perplexity
        self.early_exaggeration = early_exaggeration
        self.early_exaggeration_iter = early_exaggeration_iter
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.n_iter_without_progress = n_iter_without_progress
        self.min_grad_norm = min_grad_norm
        self.min_gain = min_gain
        self.init = init
        self.method = method
        self.random_state = random_state
        self.dtype = dtype
        self.device = device
        self.history_every = history_every
        self.callbacks = callbacks
        self.callbacks_every_iters = callbacks_every_iters
        self.n_jobs = n_jobs
        self.progress = progress
        self.verbose = verbose

    # ------------------------------------------------------------------ public API
    def fit_transform(self, X: ArrayLike, y=None, *, affinities: Optional[torch.Tensor] = None) -> np.ndarray:
        """Embed ``X (N, D)`` (or images ``(N, C, H, W)``); returns ``embedding_`` ``(N, n_components)``."""
        self.fit(X, affinities=affinities)
        return self.embedding_

    def fit(self, X: ArrayLike, y=None, *, affinities: Optional[torch.Tensor] = None) -> "TSNE":
        """Compute the affinities of ``X`` and optimise the embedding; returns ``self``.

        ``affinities``: optional precomputed ``P (N, N)`` (symmetric, sums to 1) used instead of
        ``joint_probabilities(X, perplexity)`` by the exact method (as openTSNE's ``fit(affinities=...)``).
        """
        threads = torch.get_num_threads()
        torch.set_num_threads(self._threads())
        try:
            return self._fit(_as_matrix(X), affinities)
        finally:
            torch.set_num_threads(threads)

    def _threads(self) -> int:
        if self.n_jobs is None:
            return 1
        return max(1, os.cpu_count() or 1) if self.n_jobs < 0 else max(1, int(self.n_jobs))

    def _check_parameters(self) -> None:
        """``ValueError`` naming the parameter for settings the optimiser cannot use."""
        def number(name, low, strict=True, integral=False):
            v = getattr(self, name)
            ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)
            if ok and integral:
                ok = float(v) == int(v)
            if ok:
                ok = v > low if strict else v >= low
            if not ok:
                kind = "an integer" if integral else "a finite number"
                raise ValueError(f"{name} must be {kind} {'>' if strict else '>='} {low}, got {v!r}")
        number("n_components", 0, integral=True)
        number("perplexity", 0)
        number("early_exaggeration", 0)
        number("early_exaggeration_iter", 0, strict=False, integral=True)
        number("max_iter", 0, integral=True)
        number("min_gain", 0, strict=False)
        if not (isinstance(self.learning_rate, str) and self.learning_rate == "auto"):
            try:
                number("learning_rate", 0)
            except ValueError:
                raise ValueError(f"learning_rate must be 'auto' or a finite number > 0, "
                                 f"got {self.learning_rate!r}") from None

    def _check_affinities(self, affinities, n: int) -> torch.Tensor:
        """The user's ``P``: ``(N, N)``, finite, non-negative, symmetric, zero diagonal, summing to 1."""
        P = _as_matrix(affinities, name="affinities")
        if P.shape != (n, n):
            raise ValueError(f"affinities must have shape (N, N) = {(n, n)}, got {tuple(P.shape)}")
        if float(P.min()) < 0:
            raise ValueError(f"affinities must be non-negative, got a minimum of {float(P.min()):.3g}")
        total = float(P.sum())
        if abs(total - 1) > 1e-6:
            raise ValueError(f"affinities must sum to 1 (the joint probabilities p_ij), got a sum of {total:.6g}; "
                             f"use joint_probabilities(X, perplexity) or divide P by its sum")
        asym = float((P - P.T).abs().max())
        if asym > 1e-9 * float(P.max()) + 1e-15:
            raise ValueError(f"affinities must be symmetric (p_ij = p_ji), got |P - P.T| up to {asym:.3g}")
        if float(P.diagonal().abs().max()) > 0:
            raise ValueError("affinities must have a zero diagonal (p_ii = 0), got non-zero entries on it")
        return P

    def _fit(self, X: torch.Tensor, affinities) -> "TSNE":
        n = X.shape[0]
        self._check_parameters()
        if self.method not in ("exact", "auto"):
            raise ValueError(f"method must be 'exact' or 'auto', got {self.method!r}")
        if not 0 < self.perplexity < n:
            raise ValueError(f"perplexity ({self.perplexity}) must be less than the number of points ({n})")
        self.learning_rate_ = (max(n / self.early_exaggeration / 4, 50) if self.learning_rate == "auto"
                               else float(self.learning_rate))
        self.history_ = []
        if self.method == "auto" and n > EXACT_MAX_N:
            if affinities is not None:
                raise ValueError(f"affinities are only used by the exact method (N <= EXACT_MAX_N = {EXACT_MAX_N})")
            return self._fit_opentsne(X)
        self.method_ = "exact"
        t0 = time.perf_counter()
        if affinities is None:
            self.P_ = joint_probabilities(X, self.perplexity)
        else:
            self.P_ = self._check_affinities(affinities, n)
        if self.verbose:
            print(f"[t-SNE] affinities of {n} points in {time.perf_counter() - t0:.2f} s")
        Y = self._initial_embedding(X).to(device=self.device, dtype=self.dtype)
        objective = _Objective(self.P_.to(self.device), dtype=self.dtype)
        Y = self._optimize(objective, Y)
        self.kl_divergence_ = objective(Y, compute_grad=False)[0]
        self.embedding_ = Y.cpu().numpy()
        return self

    # ------------------------------------------------------------------ pieces
    def _initial_embedding(self, X: torch.Tensor) -> torch.Tensor:
        n = X.shape[0]
        if isinstance(self.init, (np.ndarray, torch.Tensor)):
            Y = torch.as_tensor(self.init, dtype=torch.float64)
            if Y.shape != (n, self.n_components):
                raise ValueError(f"init must have shape (N, n_components) = {(n, self.n_components)}, "
                                 f"got {tuple(Y.shape)}")
            return Y.clone()
        if self.init == "pca":
            return pca_init(X, self.n_components)
        if self.init == "random":
            rng = np.random.RandomState(self.random_state)
            return torch.as_tensor(1e-4 * rng.standard_normal((n, self.n_components)))
        raise ValueError(f"init must be 'pca', 'random' or an array of shape (N, n_components), got {self.init!r}")

    def _notify(self, iteration: int, kl: float, Y: torch.Tensor) -> bool:
        """Record history / run callbacks at ``iteration`` (count of finished iterations); True means stop."""
        stop = False
        if self.history_every and iteration % self.history_every == 0:
            self.history_.append(TSNEStep(iteration, Y.cpu().numpy().copy(), kl))
        if self._callbacks and iteration > 0 and iteration % self.callbacks_every_iters == 0:
            emb = Y.cpu().numpy()
            stop = any(bool(cb(iteration, kl, emb)) for cb in self._callbacks)
        return stop

    def _wants_kl(self, iteration: int) -> bool:
        return bool((self.history_every and iteration % self.history_every == 0)
                    or (self._callbacks and iteration > 0 and iteration % self.callbacks_every_iters == 0))

    def _optimize(self, objective: _Objective, Y: torch.Tensor) -> torch.Tensor:
        """The two phases of scikit-learn's schedule; returns the final embedding."""
        cbs = self.callbacks
        self._callbacks = [] if cbs is None else ([cbs] if callable(cbs) else list(cbs))
        self._update = torch.zeros_like(Y)
        self._gains = torch.ones_like(Y)
        self._bar = None
        if self.progress:
            from nnlab.core.progress import progress_bar as tqdm  # vanishes when done in notebooks
            self._bar = tqdm(total=self.max_iter, desc="t-SNE")
        self._notify(0, objective(Y, compute_grad=False)[0] if self._wants_kl(0) else math.nan, Y)
        n_early = min(self.early_exaggeration_iter, self.max_iter)
        Y, it, stop = self._gradient_descent(objective, Y, 0, n_early, momentum=0.5,
                                             alpha=self.early_exaggeration, patience=n_early)
        if not stop and it < self.max_iter:
            # like scikit-learn, the second phase starts afresh: no momentum carried over, gains back to 1
            self._update, self._gains = torch.zeros_like(Y), torch.ones_like(Y)
            Y, it, stop = self._gradient_descent(objective, Y, it, self.max_iter, momentum=0.8, alpha=1.0,
                                                 patience=self.n_iter_without_progress)
        self.n_iter_ = it
        if self._bar is not None:
            self._bar.close()
        return Y

    def _gradient_descent(self, objective: _Objective, Y: torch.Tensor, start: int, stop: int, *,
                          momentum: float, alpha: float, patience: int):
        """Iterations ``start .. stop - 1`` of gradient descent with momentum and gains (scikit-learn's
        ``_gradient_descent``). Returns ``(Y, iterations done, stopped by a callback)``."""
        update, gains, lr = self._update, self._gains, self.learning_rate_
        best_kl, best_iter, done = math.inf, start, start
        for i in range(start, stop):
            check = (i + 1) % self._N_ITER_CHECK == 0
            kl, grad = objective(Y, alpha, compute_kl=check)
            # gains: grow where the gradient keeps the direction of travel (opposite sign to update), else shrink
            same_direction = update * grad < 0
            gains = torch.where(same_direction, gains + 0.2, gains * 0.8).clamp_(min=self.min_gain)
            grad = grad * gains
            update = momentum * update - lr * grad
            Y = Y + update
            if self._bar is not None:
                self._bar.update(1)
            done = i + 1
            if self._wants_kl(done) and (self._callbacks or self.history_every):
                if self._notify(done, objective(Y, compute_grad=False)[0], Y):
                    self._update, self._gains = update, gains
                    return Y, done, True
            if check:
                grad_norm = float(torch.linalg.vector_norm(grad))
                if self.verbose >= 2:
                    print(f"[t-SNE] iteration {done}: KL = {kl:.6f}, gradient norm = {grad_norm:.2e}")
                if alpha == 1.0 and kl < best_kl:       # (the exaggerated phase is never stopped for lack of progress)
                    best_kl, best_iter = kl, i
                elif alpha == 1.0 and i - best_iter > patience:
                    break
                if grad_norm <= self.min_grad_norm:
                    break
        self._update, self._gains = update, gains
        return Y, done, False

    def _fit_opentsne(self, X: torch.Tensor) -> "TSNE":
        """Large N: openTSNE with the same settings (its learning rate is 4x scikit-learn's for the same step)."""
        import openTSNE
        self.method_ = "opentsne"
        n_jobs = self._threads()
        lr = "auto" if self.learning_rate == "auto" else 4 * float(self.learning_rate)
        init = self.init
        if isinstance(init, str) and init == "pca":
            init = pca_init(X, self.n_components).numpy()
        elif isinstance(init, str) and init == "random":
            init = self._initial_embedding(X).numpy()
        Xn = X.numpy()
        affinities = openTSNE.affinity.PerplexityBasedNN(Xn, perplexity=self.perplexity, metric="euclidean",
                                                          n_jobs=n_jobs, random_state=self.random_state)
        emb = openTSNE.TSNEEmbedding(np.ascontiguousarray(init, dtype=np.float64), affinities,
                                     n_jobs=n_jobs, random_state=self.random_state)
        n_early = min(self.early_exaggeration_iter, self.max_iter)
        # openTSNE counts iterations from the start of each phase: call back on a common divisor of everything
        step = math.gcd(self.history_every or 0, self.callbacks_every_iters if self.callbacks else 0, n_early) or 1
        cbs = self.callbacks
        self._callbacks = [] if cbs is None else ([cbs] if callable(cbs) else list(cbs))
        offset = [0]

        def relay(iteration, kl, embedding):
            done = offset[0] + iteration
            stop = False
            if self.history_every and done % self.history_every == 0:
                self.history_.append(TSNEStep(done, np.array(embedding, copy=True), float(kl)))
            if self._callbacks and done % self.callbacks_every_iters == 0:
                stop = any(bool(cb(done, kl, np.asarray(embedding))) for cb in self._callbacks)
            return stop

        use_cb = bool(self.history_every or self._callbacks)
        if self.history_every:
            self.history_.append(TSNEStep(0, np.asarray(init, dtype=np.float32).copy(), math.nan))
        emb = emb.optimize(n_iter=n_early, exaggeration=self.early_exaggeration, momentum=0.5, learning_rate=lr,
                           callbacks=relay if use_cb else None, callbacks_every_iters=step)
        offset[0] = n_early
        if self.max_iter > n_early:
            emb = emb.optimize(n_iter=self.max_iter - n_early, momentum=0.8, learning_rate=lr,
                               callbacks=relay if use_cb else None, callbacks_every_iters=step)
        self.n_iter_ = self.max_iter
        self.kl_divergence_ = float(emb.kl_divergence)
        self.embedding_ = np.asarray(emb, dtype=np.float32).copy()
        return self


# =========================================================================== evaluation
def knn_accuracy(Y: ArrayLike, labels: ArrayLike, k: int = 10) -> float:
    """Leave-one-out accuracy of a ``k``-nearest-neighbour majority vote in the embedding ``Y (N, d)``: how often
    a point's label is the most common label among its ``k`` nearest other points (ties: smallest label)."""
    Y = _as_matrix(Y, name="Y")
    n = Y.shape[0]
    labels = torch.as_tensor(np.asarray(labels))
    if labels.shape != (n,) or labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(f"labels must be N = {n} integer class indices, got shape {tuple(labels.shape)} "
                         f"of dtype {labels.dtype}")
    labels = labels.long()
    if int(labels.min()) < 0:
        raise ValueError(f"labels must be class indices >= 0, got {int(labels.min())}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n - 1:
        raise ValueError(f"k must be an integer in [1, N - 1] = [1, {n - 1}] (neighbours other than the point "
                         f"itself), got {k!r}")
    d2 = torch.cdist(Y, Y)
    d2.fill_diagonal_(math.inf)
    nn = d2.topk(k, largest=False).indices                     # (N, k)
    votes = F.one_hot(labels[nn], int(labels.max()) + 1).sum(1)
    return float((votes.argmax(1) == labels).double().mean())
