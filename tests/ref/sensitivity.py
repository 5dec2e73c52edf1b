"""How far plausible bugs move each fixture's outputs, next to how far float32 rounding moves them:
the numbers behind the tolerances recommended in tests/ref/README.md.

    .venv/bin/python tests/ref/sensitivity.py

Each mutant is a small, realistic mistake in a C implementation (wrong GQA grouping, llama2.c's
adjacent-pair RoPE on HF weights, eps or theta off, the final norm gain dropped, clipping skipped,
weight decay on norm gains too). A tolerance is fair when every mutant lands far outside it and
the float32 rerun lands far inside it.
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_fixtures as gf  # noqa: E402
import llama_ref as ref  # noqa: E402


def run(spec, cfg=None, train=None, forward_patch=None, adamw_patch=None):
    cfg = cfg or spec["cfg"]
    gen = torch.Generator().manual_seed(spec["seed"])
    init = {k: gf.f32(v) for k, v in ref.init_params(spec["cfg"], gen, torch.float64).items()}
    batch = gf.make_batch(spec["cfg"], spec["lengths"], spec["seq"], gen)
    saved = (ref.forward, ref.make_adamw)
    try:
        if forward_patch:
            ref.forward = forward_patch(saved[0])
        if adamw_patch:
            ref.make_adamw = adamw_patch
        return gf.reference(cfg, init, batch, train or gf.TRAIN)
    finally:
        ref.forward, ref.make_adamw = saved


def distance(a, b):
    out = (a[0] - b[0]).abs().max().item()
    grad = max(((a[2][k] - b[2][k]).abs().max() / b[2][k].abs().max()).item() for k in b[2])
    step = max((a[3][k] - b[3][k]).abs().max().item() for k in b[3])
    return out, abs(float(a[1]) - float(b[1])), grad, step


def mutants(spec):
    cfg = spec["cfg"]
    rep = cfg.n_heads // cfg.n_kv_heads

    def gqa_modulo(fwd):
        """Query head h reads kv head h % KV instead of h // rep. That equals the right grouping
        applied to query heads renumbered by sigma(h) = (h % KV) * rep + h // KV, i.e. q_proj
        rows and o_proj columns moved from head h to head sigma(h)."""
        hd = cfg.head_dim
        sigma = [(h % cfg.n_kv_heads) * rep + h // cfg.n_kv_heads for h in range(cfg.n_heads)]
        src = torch.tensor([h * hd + i for h in sorted(range(cfg.n_heads), key=sigma.__getitem__)
                            for i in range(hd)])

        def f(params, c, tokens, *a):
            p = dict(params)
            for l in range(c.n_layers):
                q, o = f"model.layers.{l}.self_attn.q_proj.weight", f"model.layers.{l}.self_attn.o_proj.weight"
                p[q], p[o] = params[q][src], params[o][:, src]
            return fwd(p, c, tokens, *a)
        return f

    def adjacent_rope(fwd):
        return lambda params, c, tokens, *a: fwd(params, c, tokens, None, 0, ref.rope_adjacent_pairs)

    def no_final_gain(fwd):
        def f(params, c, tokens, *a):
            p = dict(params)
            # times 0 plus 1 keeps the gain in the graph, so it still gets a (zero) gradient
            p["model.norm.weight"] = params["model.norm.weight"] * 0 + 1
            return fwd(p, c, tokens, *a)
        return f

    def decay_everything(params, lr, betas, eps, wd):
        return torch.optim.AdamW(list(params.values()), lr=lr, betas=betas, eps=eps, weight_decay=wd)

    out = []
    if rep > 1 and cfg.n_kv_heads > 1:
        out.append(("GQA h % KV", dict(forward_patch=gqa_modulo)))
    out += [
        ("adjacent-pair RoPE", dict(forward_patch=adjacent_rope)),
        ("rope_theta x 1.5", dict(cfg=dataclasses.replace(cfg, rope_theta=cfg.rope_theta * 1.5))),
        ("norm_eps x 10", dict(cfg=dataclasses.replace(cfg, norm_eps=cfg.norm_eps * 10))),
        ("final norm gain dropped", dict(forward_patch=no_final_gain)),
        ("no grad clipping", dict(train=dict(gf.TRAIN, clip=1e9))),
        ("decay on norm gains", dict(adamw_patch=decay_everything)),
    ]
    return out


def main():
    torch.set_num_threads(1)
    print(f"{'fixture':11} {'case':24} {'max|dout|':>9} {'|dloss|':>9} {'grad rel':>9} {'max|dstep|':>10}")
    for name, spec in gf.FIXTURES.items():
        base = run(spec)
        rows = [("float32 rerun", {})] + mutants(spec)
        for label, kw in rows:
            if label == "float32 rerun":
                gen = torch.Generator().manual_seed(spec["seed"])
                init = {k: gf.f32(v) for k, v in ref.init_params(spec["cfg"], gen, torch.float64).items()}
                batch = gf.make_batch(spec["cfg"], spec["lengths"], spec["seq"], gen)
                r = gf.reference(spec["cfg"], init, batch, gf.TRAIN, torch.float32)
                r = (r[0].double(), r[1].double(), {k: v.double() for k, v in r[2].items()},
                     {k: v.double() for k, v in r[3].items()})
            else:
                r = run(spec, **kw)
            d = distance(r, base)
            print(f"{name:11} {label:24} {d[0]:9.1e} {d[1]:9.1e} {d[2]:9.1e} {d[3]:10.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
