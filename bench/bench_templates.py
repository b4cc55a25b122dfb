"""Training time and test accuracy of lab 01-02's models, nnlab against scikit-learn on the same split, same run.

* 1-NN with each similarity: ``nnlab.templates.NearestNeighbour`` against ``KNeighborsClassifier(1,
  algorithm="brute")`` (scikit-learn has no "dot" metric: that row has no peer). Timed from fit to predictions.
* Multinomial logistic regression: ``train_logistic_regression`` (Adam, mini-batches) against scikit-learn's
  ``LogisticRegression`` (L-BFGS), with the same L2 penalty: our loss is mean cross-entropy + wd/2 |W|^2, which is
  scikit-learn's objective with ``C = 1 / (wd * n)``.
* One hidden layer: ``train_hidden_layer`` against ``MLPClassifier`` (Adam, same hidden size, batch size,
  epochs, learning rate and L2 penalty: ``alpha = wd * n``).

Data: the lab's faces (AT&T, 2x downsampled to 56x46, 7 train / 3 test photos per person, seed 0) and MNIST
digits (the first ``--digits-train`` training and ``--digits-test`` test digits). Every library runs on the same
number of CPU threads (``--threads``); each time is the best of ``--repeat`` runs. Ratios are nnlab / peer.

    python bench/bench_templates.py [--threads 1] [--repeat 3] [--digits-train 10000] [--digits-test 2000]

Writes ``bench/results/templates.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from nnlab import data as nndata
from nnlab import templates as T
from nnlab.models import accuracy

RESULTS = Path(__file__).resolve().parent / "results" / "templates.md"

#: The training recipes of the labs (faces: full batch) and a mini-batch one for the digits.
RECIPES = {
    "faces": {"logreg": dict(epochs=100, lr=1e-2, batch_size=None, weight_decay=1e-3),
              "mlp": dict(hidden=300, epochs=100, lr=3e-3, batch_size=None, weight_decay=1e-2)},
    "digits": {"logreg": dict(epochs=3, lr=1e-2, batch_size=128, weight_decay=1e-4),
               "mlp": dict(hidden=300, epochs=3, lr=3e-3, batch_size=128, weight_decay=1e-4)},
}


def best_time(run, repeat):
    """(best seconds, result of the last run)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_dataset(name, train, test, repeat):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    Xtr, Xte = T.flatten(train.images).numpy(), T.flatten(test.images).numpy()
    ytr, yte = train.labels.numpy(), test.labels.numpy()
    n = len(Xtr)
    rows = []

    def add(model, ours, peer_name, peer):
        (t_ours, acc_ours), (t_peer, acc_peer) = ours, peer if peer else (None, None)
        rows.append(dict(data=name, model=model, t_ours=t_ours, acc_ours=acc_ours, peer=peer_name,
                         t_peer=t_peer, acc_peer=acc_peer))
        ratio = f"{t_ours / t_peer:5.2f}x" if t_peer else "   -  "
        print(f"{name:6s} {model:28s} nnlab {t_ours:7.3f} s {acc_ours:6.1%} | {peer_name or '-':24s} "
              + (f"{t_peer:7.3f} s {acc_peer:6.1%}" if t_peer else "") + f" | time ratio {ratio}", flush=True)

    for similarity in ("euclidean", "cosine", "dot"):
        ours = best_time(lambda: T.NearestNeighbour(similarity).fit(train.images, train.labels)
                         .score(test.images, test.labels), repeat)
        peer = None
        if similarity != "dot":
            peer = best_time(lambda: float((KNeighborsClassifier(1, metric=similarity, algorithm="brute")
                                            .fit(Xtr, ytr).predict(Xte) == yte).mean()), repeat)
        add(f"1-NN {similarity}", ours, "KNeighborsClassifier" if peer else None, peer)

    recipe = RECIPES[name]["logreg"]
    batch = recipe["batch_size"] or n
    ours = best_time(lambda: accuracy(T.train_logistic_regression(
        train.images, train.labels, epochs=recipe["epochs"], lr=recipe["lr"], batch_size=batch,
        weight_decay=recipe["weight_decay"], progress=False), test.images, test.labels), repeat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs may stop at max_iter on the digits
        peer = best_time(lambda: float((LogisticRegression(C=1 / (recipe["weight_decay"] * n), max_iter=500)
                                        .fit(Xtr, ytr).predict(Xte) == yte).mean()), repeat)
    add(f"logistic regression ({recipe['epochs']} ep.)", ours, "LogisticRegression (lbfgs)", peer)

    recipe = RECIPES[name]["mlp"]
    batch = recipe["batch_size"] or n
    ours = best_time(lambda: accuracy(T.train_hidden_layer(
        train.images, train.labels, hidden=recipe["hidden"], epochs=recipe["epochs"], lr=recipe["lr"],
        batch_size=batch, weight_decay=recipe["weight_decay"], schedule="onecycle", progress=False),
        test.images, test.labels), repeat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter reached, as intended
        def sklearn_mlp():
            mlp = MLPClassifier((recipe["hidden"],), solver="adam", alpha=recipe["weight_decay"] * n, batch_size=batch,
                                learning_rate_init=recipe["lr"], max_iter=recipe["epochs"], random_state=0)
            return float((mlp.fit(Xtr, ytr).predict(Xte) == yte).mean())

        peer = best_time(sklearn_mlp, repeat)
    add(f"{recipe['hidden']} hidden units ({recipe['epochs']} ep.)", ours, "MLPClassifier (adam)", peer)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for every library (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best time is kept")
    parser.add_argument("--digits-train", type=int, default=10000)
    parser.add_argument("--digits-test", type=int, default=2000)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    train, test = T.lab_faces()
    datasets = [("faces", train, test, train.source)]
    digits, digits_test = nndata.mnist("train"), nndata.mnist("test")
    digits, digits_test = digits.subset(slice(0, args.digits_train)), digits_test.subset(slice(0, args.digits_test))
    datasets.append(("digits", digits, digits_test,
                     f"the first {len(digits)} / {len(digits_test)} MNIST digits ({digits.source})"))
    rows, sources = [], []
    with threadpool_limits(args.threads):
        for name, tr, te, source in datasets:
            if name == "faces" and tr.extra.get("fallback"):
                print("faces not found: skipping them")
                continue
            sources.append(f"* {name}: {len(tr)} train / {len(te)} test, {source}")
            rows += bench_dataset(name, tr, te, args.repeat)
    write(rows, sources, args)


def write(rows, sources, args):
    lines = [
        "# Templates and nearest neighbours: nnlab against scikit-learn",
        "",
        f"Measured in one run of `python bench/bench_templates.py {' '.join(os.sys.argv[1:])}` on "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared machine, load average "
        f"{os.getloadavg()[0]:.1f} at the end), {args.threads} thread(s) for every library, best of {args.repeat} "
        f"runs; torch {torch.__version__}.",
        "",
        *sources,
        "",
        "Times are training + prediction on the test set (1-NN: fit + predict). Ratio = nnlab time / peer time "
        "(below 1: nnlab is faster); accuracies on the same test split.",
        "",
        "| data | model | nnlab time | nnlab test acc. | peer | peer time | peer test acc. | time ratio |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        peer = r["t_peer"] is not None
        lines.append(f"| {r['data']} | {r['model']} | {r['t_ours']:.3f} s | {r['acc_ours']:.1%} | "
                     f"{r['peer'] or '-'} | " + (f"{r['t_peer']:.3f} s | {r['acc_peer']:.1%} | "
                                                 f"{r['t_ours'] / r['t_peer']:.2f}" if peer else "- | - | -") + " |")
    lines += ["", "Recipes (nnlab; the peers get the same hidden size, epochs, batch size, learning rate and L2 "
              "penalty where they have them; `None` batch = the whole training set):", ""]
    for name, recipe in RECIPES.items():
        lines.append(f"* {name}: " + "; ".join(f"{model}: {', '.join(f'{k}={v}' for k, v in r.items())}"
                                               for model, r in recipe.items()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
