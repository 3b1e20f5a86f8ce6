#!/usr/bin/env python3
"""Check a fixture written by train_reference_dlrm.py: reload model.safetensors,
recompute the logits of rows.csv and compare with logits.csv.

Two independent recomputations:
  * torch: the same module layout, weights loaded with load_state_dict(strict=True);
  * numpy: the DLRM forward written out by hand from the raw safetensors arrays
    (no torch), in float32 and in float64.
"""

import argparse
import csv
import os
import sys

import numpy as np
from safetensors.numpy import load_file


def read_fixture(d):
    with open(os.path.join(d, "rows.csv")) as f:
        r = csv.reader(f)
        header = next(r)
        rows = list(r)
    assert header == ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)], header
    label = np.array([int(x[0]) for x in rows], dtype=np.int64)
    dense = np.array([[float(v) for v in x[1:14]] for x in rows], dtype=np.float64)
    dense32 = dense.astype(np.float32)
    assert np.array_equal(dense32.astype(np.float64), dense), "dense values are not exact float32"
    sparse = np.array([[int(v) for v in x[14:]] for x in rows], dtype=np.int64)
    with open(os.path.join(d, "logits.csv")) as f:
        lines = f.read().split()
    assert lines[0] == "logit"
    logits = np.array([np.float32(v) for v in lines[1:]], dtype=np.float32)
    assert len(logits) == len(rows)
    return label, dense32, sparse, logits


def numpy_forward(w, dense, sparse, dt):
    g = lambda k: w[k].astype(dt)
    relu = lambda a: np.maximum(a, 0)
    x = dense.astype(dt)
    x = relu(x @ g("bot_l.0.weight").T + g("bot_l.0.bias"))
    x = relu(x @ g("bot_l.2.weight").T + g("bot_l.2.bias"))
    ly = [g(f"emb_l.{k}.weight")[sparse[:, k]] for k in range(sparse.shape[1])]
    T = np.stack([x] + ly, axis=1)  # (B, 27, 4)
    Z = T @ T.transpose(0, 2, 1)
    ni = T.shape[1]
    li = [i for i in range(ni) for j in range(i)]
    lj = [j for i in range(ni) for j in range(i)]
    R = np.concatenate([x, Z[:, li, lj]], axis=1)
    h = relu(R @ g("top_l.0.weight").T + g("top_l.0.bias"))
    return (h @ g("top_l.2.weight").T + g("top_l.2.bias"))[:, 0]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()

    label, dense, sparse, logits = read_fixture(args.fixture)
    w = load_file(os.path.join(args.fixture, "model.safetensors"))
    assert all(v.dtype == np.float32 for v in w.values())
    n_tables = len([k for k in w if k.startswith("emb_l.")])
    for k in range(n_tables):
        assert sparse[:, k].max() < w[f"emb_l.{k}.weight"].shape[0]

    ok = True
    # torch reload through the same module layout
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch
    from train_reference_dlrm import ReferenceLayoutDLRM, batch_inputs

    sizes = np.array([w[f"emb_l.{k}.weight"].shape[0] for k in range(n_tables)])
    m = w["bot_l.2.weight"].shape[0]
    model = ReferenceLayoutDLRM(
        np.array([dense.shape[1], w["bot_l.0.weight"].shape[0], m]),
        sizes,
        m,
        np.array([w["top_l.0.weight"].shape[1], w["top_l.0.weight"].shape[0], 1]),
    )
    model.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()}, strict=True)
    model.eval()
    with torch.no_grad():
        t = model.logit(*batch_inputs(dense, sparse)).numpy()
    d = float(np.abs(t - logits).max())
    print(f"torch reload  vs logits.csv: max abs diff {d:.3e} (bit-identical rows: {int((t == logits).sum())}/{len(logits)})")
    ok &= d <= args.tol

    for dt in (np.float32, np.float64):
        y = numpy_forward(w, dense, sparse, dt)
        d = float(np.abs(y - logits.astype(np.float64)).max())
        print(f"numpy {np.dtype(dt).name} vs logits.csv: max abs diff {d:.3e}")
        ok &= d <= args.tol

    print(f"{len(logits)} rows, {int(label.sum())} positive; logits in [{logits.min():.4f}, {logits.max():.4f}]")
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
