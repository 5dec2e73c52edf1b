"""Writes tests/fixtures/ref_<name>.safetensors: a tiny Llama-2, one batch, and what PyTorch says
the forward pass, the gradients and three AdamW steps give. The C model tests load these.

    .venv/bin/python tests/ref/gen_fixtures.py            # (re)write the fixtures
    .venv/bin/python tests/ref/gen_fixtures.py --check    # regenerate in memory, compare bytes

Everything is seeded and computed on one thread, so reruns are byte-identical. Inputs (weights,
coefficients, targets) are drawn, rounded to float32 and stored; the reference then runs in
float64 on exactly those float32 values, and its results are rounded to float32 when stored.
So a float32 implementation is compared with the true answer for its own inputs, not with
another float32 computation's rounding.

Tensors in each file (B = batch, T = seq, names of parameters as in llama_ref.py):
  <param>                  F32  initial weights
  input.tokens             I32 (B,T)  right-padded with 0
  input.lengths            I32 (B)
  lm:     input.targets    I32 (B,T)  next token; 0 at padding
          input.mask       F32 (B,T)  1 where the loss counts (0 at padding and at a prompt prefix)
          out.logits       F32 (B,T,V) every position, padded ones included
  scalar: input.coef       F32 (B)    weight of each sequence's last-token value in the loss
          input.vtarget    F32 (B,T)  regression target of every value (0 at padding)
          out.values       F32 (B,T)  every position
  out.loss                 F32 (1)    see llama_ref.lm_loss / scalar_loss
  grad.<param>             F32        d out.loss / d param at the initial weights
  step<steps>.<param>      F32        weights after <steps> optimizer steps on the same batch
  out.step_loss            F32 (steps) loss before each step (step_loss[0] == out.loss)
  out.grad_norm            F32 (steps) global gradient L2 norm before clipping, each step
Each step: zero grads, loss, backward, clip_grad_norm_(clip) (scale = clip / (norm + 1e-6) when
that is < 1), AdamW (decoupled decay p *= 1 - lr*wd on matrices only, bias-corrected moments,
eps added to sqrt(v_hat)).
"""
import argparse
import json
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402
import safetensors_io  # noqa: E402

TRAIN = dict(lr=1e-3, beta1=0.9, beta2=0.95, eps=1e-5, weight_decay=0.1, clip=1.0, steps=3)

FIXTURES = {
    "lm_gqa": dict(seed=1001, lengths=[8, 5, 7], seq=8, cfg=ref.Config(
        dim=32, hidden_dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=64, max_seq_len=16,
        norm_eps=1e-5, rope_theta=10000.0, tie_embeddings=False, head="lm")),
    "lm_tied": dict(seed=1002, lengths=[6, 8, 3], seq=8, cfg=ref.Config(
        dim=32, hidden_dim=48, n_layers=2, n_heads=4, n_kv_heads=4, vocab_size=48, max_seq_len=16,
        norm_eps=1e-6, rope_theta=500000.0, tie_embeddings=True, head="lm")),
    "scalar_mqa": dict(seed=1003, lengths=[7, 8, 4], seq=8, cfg=ref.Config(
        dim=32, hidden_dim=64, n_layers=2, n_heads=4, n_kv_heads=1, vocab_size=64, max_seq_len=16,
        norm_eps=1e-5, rope_theta=10000.0, tie_embeddings=False, head="scalar")),
}


def f32(t):
    """Round to float32 and come back to float64: the values the C side will actually see."""
    return t.float().double()


def make_batch(cfg, lengths, T, gen):
    B, V = len(lengths), cfg.vocab_size
    lengths = torch.tensor(lengths, dtype=torch.int64)
    valid = ref.valid_mask(lengths, T, torch.int64)
    tokens = torch.randint(1, V, (B, T), generator=gen) * valid
    batch = {"input.tokens": tokens, "input.lengths": lengths}
    if cfg.head == "lm":
        # Next-token targets; the last valid position gets a random "end" token of its own.
        targets = torch.randint(1, V, (B, T), generator=gen)
        targets[:, :-1] = tokens[:, 1:]
        for b, n in enumerate(lengths.tolist()):
            targets[b, n - 1] = int(torch.randint(1, V, (1,), generator=gen))
        targets = targets * valid
        # An SFT-like prompt prefix that carries no loss, 1..len/2 tokens long.
        mask = valid.double()
        for b, n in enumerate(lengths.tolist()):
            p = int(torch.randint(1, n // 2 + 1, (1,), generator=gen))
            mask[b, :p] = 0.0
        batch["input.targets"], batch["input.mask"] = targets, mask
    else:
        batch["input.coef"] = f32(torch.randn(B, generator=gen, dtype=torch.float64))
        batch["input.vtarget"] = f32(0.5 * torch.randn(B, T, generator=gen, dtype=torch.float64)) * valid
    return batch


def loss_of(params, cfg, batch):
    out = ref.forward(params, cfg, batch["input.tokens"])
    if cfg.head == "lm":
        return out, ref.lm_loss(out, batch["input.targets"], batch["input.mask"])
    return out, ref.scalar_loss(out, batch["input.lengths"], batch["input.coef"], batch["input.vtarget"])


def leaf_copy(params, dtype=torch.float64):
    return {k: v.detach().clone().to(dtype).requires_grad_(True) for k, v in params.items()}


def reference(cfg, init, batch, train, dtype=torch.float64):
    """-> (output, loss, grads, params after the steps, per-step losses, per-step grad norms)."""
    batch = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in batch.items()}
    params = leaf_copy(init, dtype)
    out, loss = loss_of(params, cfg, batch)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in params.items()}

    params = leaf_copy(init, dtype)
    opt = ref.make_adamw(params, train["lr"], (train["beta1"], train["beta2"]), train["eps"],
                         train["weight_decay"])
    losses, norms = [], []
    for _ in range(train["steps"]):
        opt.zero_grad()
        _, step_loss = loss_of(params, cfg, batch)
        step_loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), train["clip"])))
        losses.append(float(step_loss))
        opt.step()
    stepped = {k: p.detach().clone() for k, p in params.items()}
    return out.detach(), loss.detach(), grads, stepped, losses, norms


def build(name, spec):
    """-> (tensors, metadata, float32-rerun discrepancies) for one fixture."""
    cfg, T, lengths, train = spec["cfg"], spec["seq"], spec["lengths"], TRAIN
    gen = torch.Generator().manual_seed(spec["seed"])
    init = {k: f32(v) for k, v in ref.init_params(cfg, gen, torch.float64).items()}
    batch = make_batch(cfg, lengths, T, gen)
    out, loss, grads, stepped, losses, norms = reference(cfg, init, batch, train)

    tensors = dict(init)
    tensors.update(batch)
    tensors["out.logits" if cfg.head == "lm" else "out.values"] = out
    tensors["out.loss"] = loss.reshape(1)
    tensors["out.step_loss"] = torch.tensor(losses, dtype=torch.float64)
    tensors["out.grad_norm"] = torch.tensor(norms, dtype=torch.float64)
    for k in init:
        tensors["grad." + k] = grads[k]
        tensors[f"step{train['steps']}." + k] = stepped[k]
    config = dict(cfg.to_dict(), batch=len(lengths), seq=T, **train)
    meta = {"config": json.dumps(config)}

    # The same computation in float32 shows how close a correct float32 implementation gets,
    # which is what the C test's tolerances should allow (printed, not stored).
    o32, l32, g32, s32, _, _ = reference(cfg, init, batch, train, torch.float32)
    diffs = {
        "out": (o32.double() - out).abs().max().item(),
        "loss": abs(float(l32) - float(loss)),
        "grad_rel": max(((g32[k].double() - grads[k]).abs().max() / grads[k].abs().max().clamp_min(1e-30)).item()
                        for k in init),
        "step": max((s32[k].double() - stepped[k]).abs().max().item() for k in init),
        "moved": min((stepped[k] - init[k]).abs().max().item() for k in init),
        "grad_norm": norms,
    }
    return tensors, meta, diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures"), help="output directory")
    ap.add_argument("--check", action="store_true", help="regenerate and compare with the files in --out")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one summation order, so reruns are byte-identical

    tmp = tempfile.mkdtemp() if args.check else None
    bad = 0
    for name, spec in FIXTURES.items():
        tensors, meta, d = build(name, spec)
        path = os.path.join(args.out, f"ref_{name}.safetensors")
        target = os.path.join(tmp, os.path.basename(path)) if args.check else path
        if not args.check:
            os.makedirs(args.out, exist_ok=True)
        safetensors_io.save(target, tensors, meta)
        _, back = safetensors_io.load(target)
        assert sorted(back) == sorted(tensors), "round trip lost a tensor"
        for k, v in tensors.items():
            want = v.to(torch.float32 if v.is_floating_point() else torch.int32).numpy()
            assert (back[k] == want).all(), f"round trip changed {k}"
        if args.check:
            same = open(path, "rb").read() == open(target, "rb").read()
            bad += not same
            print(f"{name}: {'identical' if same else 'DIFFERENT'}")
        else:
            print(f"{name}: {os.path.getsize(path)} bytes; float32 rerun: max|dlogits| {d['out']:.2e}, "
                  f"|dloss| {d['loss']:.2e}, max grad rel err {d['grad_rel']:.2e}, "
                  f"max|dstep| {d['step']:.2e}; smallest max move {d['moved']:.2e}; "
                  f"grad norms {', '.join(f'{n:.4f}' for n in d['grad_norm'])}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
