#!/usr/bin/env python3
"""gensim's Word2Vec beside kiln's examples/word2vec.rs, on the same tokens.

The token stream is the one kiln trains on: run the Rust example with
`--write-corpus data/word2vec/train-tokens.txt` first (one sentence of at most
10,000 tokens per line; gensim's LineSentence reads it and cuts at the same
10,000). gensim builds its vocabulary from it with the same minimum count, so
both models see the same words; sg=1 (skip-gram), negative sampling, no
hierarchical softmax, the same dimension, window, negatives, sample, epochs,
alpha 0.025 -> min_alpha 0.0001, ns_exponent 0.75, workers=1 (one thread:
deterministic for a seed, and the same core count kiln's example uses).

Scoring is kiln's: pairs of data/wordsim/{wordsim353.tsv, simlex999.txt}
(scripts/fetch-word-similarity), words lower-cased, only pairs whose two
words are in the vocabulary, cosine similarity, Spearman's rho with average
ranks for ties (scipy.stats.spearmanr).

`--kiln PATH...` also loads vectors kiln saved (word2vec text format) with
`KeyedVectors.load_word2vec_format` and scores them the same way, which
checks the file format and kiln's own Spearman figures.

Needs gensim (a venv: `python3 -m venv /tmp/gensimenv && /tmp/gensimenv/bin/pip
install gensim`); nothing in CI runs it.

    /tmp/gensimenv/bin/python scripts/python/word2vec_gensim.py --seeds 1 2 3
"""
import argparse
import os
import statistics
import sys
import time

from gensim.models import KeyedVectors, Word2Vec
from gensim.models.word2vec import LineSentence
from scipy.stats import spearmanr


def read_pairs(path):
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            a, b, s = line.rstrip("\n").split("\t")[:3]
            pairs.append((a.strip().lower(), b.strip().lower(), float(s)))
    return pairs


def score(kv, pairs):
    human, model = [], []
    for a, b, s in pairs:
        if a in kv.key_to_index and b in kv.key_to_index:
            human.append(s)
            model.append(float(kv.similarity(a, b)))
    rho = spearmanr(human, model).correlation if len(human) > 1 else float("nan")
    return rho, len(human), len(pairs)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="data/word2vec/train-tokens.txt")
    p.add_argument("--wordsim-dir", default="data/wordsim")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negative", type=int, default=5)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--save-dir", default="data/word2vec")
    p.add_argument("--kiln", nargs="*", default=[], help="kiln vector files to load and score")
    a = p.parse_args()

    sets = {
        "wordsim353": read_pairs(os.path.join(a.wordsim_dir, "wordsim353.tsv")),
        "simlex999": read_pairs(os.path.join(a.wordsim_dir, "simlex999.txt")),
    }
    if not os.path.exists(a.corpus):
        sys.exit(f"{a.corpus} is missing: run `cargo run --release --example word2vec -- --write-corpus {a.corpus}` first")

    results = {k: [] for k in sets}
    for path in a.kiln:
        kv = KeyedVectors.load_word2vec_format(path, binary=False)
        figs = " ".join(f"{k} {score(kv, v)[0]:.4f} ({score(kv, v)[1]}/{score(kv, v)[2]})" for k, v in sets.items())
        print(f"kiln {path}: {len(kv)} vectors of {kv.vector_size}, loaded by gensim; {figs}")

    for seed in a.seeds:
        t0 = time.time()
        model = Word2Vec(
            sentences=LineSentence(a.corpus),
            vector_size=a.dim, window=a.window, min_count=a.min_count, sample=a.sample,
            sg=1, hs=0, negative=a.negative, ns_exponent=0.75, epochs=a.epochs,
            alpha=0.025, min_alpha=0.0001, workers=a.workers, seed=seed,
        )
        secs = time.time() - t0
        os.makedirs(a.save_dir, exist_ok=True)
        model.wv.save_word2vec_format(os.path.join(a.save_dir, f"gensim-seed{seed}.txt"))
        parts = []
        for k, pairs in sets.items():
            rho, used, total = score(model.wv, pairs)
            results[k].append(rho)
            parts.append(f"{k} {rho:.4f} ({used}/{total} pairs)")
        print(f"gensim seed {seed}: {len(model.wv)} words, {secs:.1f} s (build_vocab + train, workers={a.workers}); " + ", ".join(parts))
        for w in ("king", "love", "night", "sword", "france"):
            if w in model.wv.key_to_index:
                nn = ", ".join(f"{x} {c:.2f}" for x, c in model.wv.most_similar(w, topn=8))
                print(f"  nearest to {w}: {nn}")
    print("gensim mean over seeds " + " ".join(map(str, a.seeds)) + ": "
          + " ".join(f"{k} {statistics.mean(v):.4f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
