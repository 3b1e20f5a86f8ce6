#!/usr/bin/env python3
"""Train a small DLRM in PyTorch with the module layout of Facebook's reference
DLRM (dlrm_s_pytorch.py) on a dataset prepared by `dlrm-he prepare criteo`, and
write a small fixture (weights, rows, logits) that the Rust tests read.

Not part of CI; see tools/pytorch_dlrm/README.md.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn as nn
from safetensors.torch import save_file

DENSE = [f"I{i}" for i in range(1, 14)]
SPARSE = [f"C{i}" for i in range(1, 27)]


class ReferenceLayoutDLRM(nn.Module):
    """Same attribute names and Sequential layout as DLRM_Net in dlrm_s_pytorch.py
    (bot_l, emb_l, top_l), with arch_interaction_op="dot" and
    arch_interaction_itself=False."""

    def __init__(self, ln_bot, table_sizes, m_spa, ln_top):
        super().__init__()
        self.arch_interaction_itself = False
        self.bot_l = self.create_mlp(ln_bot, sigmoid_layer=-1)
        self.emb_l = self.create_emb(m_spa, table_sizes)
        # Reference: sigmoid_top = len(ln_top) - 2, i.e. the last activation is a
        # Sigmoid. It has no parameters, so state_dict keys are unchanged.
        self.top_l = self.create_mlp(ln_top, sigmoid_layer=len(ln_top) - 2)

    @staticmethod
    def create_mlp(ln, sigmoid_layer):
        # Mirrors DLRM_Net.create_mlp (initialisation included).
        layers = nn.ModuleList()
        for i in range(0, ln.size - 1):
            n = int(ln[i])
            m = int(ln[i + 1])
            LL = nn.Linear(n, m, bias=True)
            mean = 0.0
            std_dev = np.sqrt(2 / (m + n))
            W = np.random.normal(mean, std_dev, size=(m, n)).astype(np.float32)
            std_dev = np.sqrt(1 / m)
            bt = np.random.normal(mean, std_dev, size=m).astype(np.float32)
            LL.weight.data = torch.tensor(W, requires_grad=True)
            LL.bias.data = torch.tensor(bt, requires_grad=True)
            layers.append(LL)
            if i == sigmoid_layer:
                layers.append(nn.Sigmoid())
            else:
                layers.append(nn.ReLU())
        return torch.nn.Sequential(*layers)

    @staticmethod
    def create_emb(m, ln):
        # Mirrors DLRM_Net.create_emb (no qr/md/weighted variants).
        emb_l = nn.ModuleList()
        for i in range(0, ln.size):
            n = int(ln[i])
            EE = nn.EmbeddingBag(n, m, mode="sum", sparse=False)
            W = np.random.uniform(
                low=-np.sqrt(1 / n), high=np.sqrt(1 / n), size=(n, m)
            ).astype(np.float32)
            EE.weight.data = torch.tensor(W, requires_grad=True)
            emb_l.append(EE)
        return emb_l

    def apply_mlp(self, x, layers):
        return layers(x)

    def apply_emb(self, lS_o, lS_i, emb_l):
        ly = []
        for k, sparse_index_group_batch in enumerate(lS_i):
            sparse_offset_group_batch = lS_o[k]
            E = emb_l[k]
            V = E(sparse_index_group_batch, sparse_offset_group_batch)
            ly.append(V)
        return ly

    def interact_features(self, x, ly):
        # Verbatim from dlrm_s_pytorch.py, arch_interaction_op == "dot".
        (batch_size, d) = x.shape
        T = torch.cat([x] + ly, dim=1).view((batch_size, -1, d))
        Z = torch.bmm(T, torch.transpose(T, 1, 2))
        _, ni, nj = Z.shape
        offset = 1 if self.arch_interaction_itself else 0
        li = torch.tensor([i for i in range(ni) for j in range(i + offset)])
        lj = torch.tensor([j for i in range(ni) for j in range(i + offset)])
        Zflat = Z[:, li, lj]
        R = torch.cat([x] + [Zflat], dim=1)
        return R

    def logit(self, dense_x, lS_o, lS_i):
        """Pre-sigmoid output: the reference forward minus the final Sigmoid."""
        x = self.apply_mlp(dense_x, self.bot_l)
        ly = self.apply_emb(lS_o, lS_i, self.emb_l)
        z = self.interact_features(x, ly)
        return self.apply_mlp(z, self.top_l[:-1]).squeeze(1)

    def forward(self, dense_x, lS_o, lS_i):
        """Reference forward: probability (top_l ends in Sigmoid)."""
        x = self.apply_mlp(dense_x, self.bot_l)
        ly = self.apply_emb(lS_o, lS_i, self.emb_l)
        z = self.interact_features(x, ly)
        return self.apply_mlp(z, self.top_l)


def load_split(data_dir, name):
    t = pq.read_table(os.path.join(data_dir, f"{name}.parquet"))
    for c in t.column_names:
        if t.column(c).null_count:
            sys.exit(f"{name}.parquet column {c} has nulls; expected none")
    label = t.column("label").to_numpy().astype(np.float32)
    dense = np.stack([t.column(c).to_numpy() for c in DENSE], axis=1).astype(np.float32)
    sparse = np.stack([t.column(c).to_numpy() for c in SPARSE], axis=1).astype(np.int64)
    return label, dense, sparse


def batch_inputs(dense, sparse):
    """One id per bag: indices per table, offsets 0..B-1 (as the reference's
    per-table lS_i / lS_o lists)."""
    b = dense.shape[0]
    dense_x = torch.from_numpy(np.ascontiguousarray(dense))
    offs = torch.arange(b, dtype=torch.int64)
    lS_i = [torch.from_numpy(np.ascontiguousarray(sparse[:, k])) for k in range(sparse.shape[1])]
    lS_o = [offs for _ in range(sparse.shape[1])]
    return dense_x, lS_o, lS_i


def auc(labels, scores):
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties given mean rank."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    pos = labels > 0.5
    n_pos = int(pos.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((r[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@torch.no_grad()
def predict_logits(model, dense, sparse, batch=4096):
    model.eval()
    out = []
    for s in range(0, dense.shape[0], batch):
        out.append(model.logit(*batch_inputs(dense[s : s + batch], sparse[s : s + batch])))
    return torch.cat(out).numpy().astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="dataset dir from `dlrm-he prepare criteo`")
    ap.add_argument("--out", required=True, help="fixture dir to write")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows-out", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_default_dtype(torch.float32)

    with open(os.path.join(args.data, "manifest.json")) as f:
        manifest = json.load(f)
    dense_names = [d["name"] for d in manifest["dense"]]
    sparse_names = [c["name"] for c in manifest["categorical"]]
    if dense_names != DENSE or sparse_names != SPARSE:
        sys.exit(f"unexpected manifest columns: {dense_names} {sparse_names}")
    table_sizes = np.array([c["table_size"] for c in manifest["categorical"]], dtype=np.int64)

    m_spa = 4
    ln_bot = np.array([13, 16, m_spa])
    num_fea = len(table_sizes) + 1
    num_int = m_spa + num_fea * (num_fea - 1) // 2  # 4 + 351
    ln_top = np.array([num_int, 16, 1])

    tr_y, tr_d, tr_s = load_split(args.data, "train")
    va_y, va_d, va_s = load_split(args.data, "val")
    te_y, te_d, te_s = load_split(args.data, "test")
    for name, s in (("train", tr_s), ("val", va_s), ("test", te_s)):
        if (s >= table_sizes[None, :]).any() or (s < 0).any():
            sys.exit(f"{name}: categorical id out of table range")

    model = ReferenceLayoutDLRM(ln_bot, table_sizes, m_spa, ln_top)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.BCEWithLogitsLoss()

    n = tr_d.shape[0]
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    best = (-1.0, 0, None)  # (val AUC, epoch, state_dict copy)
    for epoch in range(args.epochs):
        model.train()
        perm = rng.permutation(n)
        total = 0.0
        for s in range(0, n, args.batch_size):
            idx = perm[s : s + args.batch_size]
            y = torch.from_numpy(tr_y[idx])
            z = model.logit(*batch_inputs(tr_d[idx], tr_s[idx]))
            loss = loss_fn(z, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        va_auc = auc(va_y, predict_logits(model, va_d, va_s))
        print(f"epoch {epoch + 1}: train loss {total / n:.4f}  val AUC {va_auc:.4f}  ({time.time() - t0:.1f} s)")
        if va_auc > best[0]:
            best = (va_auc, epoch + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})
    # The small embedding tables memorise quickly: keep the epoch with the best
    # validation AUC (early stopping on the val split).
    model.load_state_dict(best[2])
    print(f"kept epoch {best[1]} (val AUC {best[0]:.4f})")

    model.eval()
    te_logits = predict_logits(model, te_d, te_s)
    test_auc = auc(te_y, te_logits)
    k = min(args.rows_out, te_d.shape[0])
    fx_y, fx_d, fx_s = te_y[:k], te_d[:k], te_s[:k]
    # Fixture logits: one eval-mode float32 forward over the fixture rows.
    with torch.no_grad():
        fx_logits = model.logit(*batch_inputs(fx_d, fx_s)).numpy().astype(np.float32)
        # Sanity: the reference forward (with the Sigmoid) equals sigmoid(logit).
        p = model(*batch_inputs(fx_d, fx_s)).squeeze(1).numpy()
        assert np.allclose(p, 1 / (1 + np.exp(-fx_logits.astype(np.float64))), atol=1e-6)
    fixture_auc = auc(fx_y, fx_logits)
    print(f"test AUC (full test split, {te_d.shape[0]} rows): {test_auc:.4f}")
    print(f"test AUC (fixture rows, {k} rows): {fixture_auc:.4f}")

    os.makedirs(args.out, exist_ok=True)
    sd = {name: t.detach().to(torch.float32).contiguous() for name, t in model.state_dict().items()}
    save_file(sd, os.path.join(args.out, "model.safetensors"))
    os.chmod(os.path.join(args.out, "model.safetensors"), 0o644)

    with open(os.path.join(args.out, "rows.csv"), "w") as f:
        f.write(",".join(["label"] + DENSE + SPARSE) + "\n")
        for i in range(k):
            # repr of the float32 widened to float64 names the float32 exactly.
            vals = [str(int(fx_y[i]))]
            vals += [repr(float(v)) for v in fx_d[i]]
            vals += [str(int(v)) for v in fx_s[i]]
            f.write(",".join(vals) + "\n")

    with open(os.path.join(args.out, "logits.csv"), "w") as f:
        f.write("logit\n")
        for v in fx_logits:
            f.write("%.9g\n" % float(v))

    summary = {
        "epochs": args.epochs,
        "kept_epoch": best[1],
        "val_auc": best[0],
        "seed": args.seed,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "rows_out": k,
        "test_rows": int(te_d.shape[0]),
        "test_auc": test_auc,
        "fixture_auc": fixture_auc,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "state_dict": {name: list(t.shape) for name, t in sd.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
