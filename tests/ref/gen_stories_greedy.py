"""Writes tests/fixtures/stories260K_greedy.json: what greedy decoding from BOS gives with the real
trained stories260K model, for the C llama2.c importer and decoder to reproduce.

    .venv/bin/python tests/ref/gen_stories_greedy.py [--model PATH] [--out PATH] [--check]

llama2.c legacy v0 checkpoint (all little-endian):
  7 int32: dim D, hidden_dim F, n_layers L, n_heads H, n_kv_heads KV, vocab_size V, seq_len S;
           V > 0 means the classifier is the token embedding, V < 0 an extra wcls follows (|V|).
  float32: token_embedding (V,D), rms_att (L,D), wq (L,D,D), wk (L,KV*hd,D), wv (L,KV*hd,D),
           wo (L,D,D), rms_ffn (L,D), w1 (L,F,D), w2 (L,D,F), w3 (L,F,D), rms_final (D),
           freq_cis_real (S,hd/2), freq_cis_imag (S,hd/2) [, wcls (V,D)]
llama2.c rotates adjacent pairs (2i, 2i+1) of each head by angle pos * 10000^(-2i/hd); HF's
rotate_half pairs i with i + hd/2 at the same angle. So rows of wq and wk are permuted within each
head to [even rows..., odd rows...], which makes the two conventions compute the same scores.
w1 = gate, w3 = up, w2 = down. eps 1e-5, theta 10000 (llama2.c hard-codes both).

The script checks that the permutation is right (the HF-convention model on permuted weights and
an adjacent-pairs model on the raw weights give the same logits), that the file's RoPE tables are
the cos/sin we compute, that the KV-cached decode equals a full forward, and that float32 picks the
same tokens as float64 (and records the smallest top-1/top-2 gap, so a C test knows its margin).

Output JSON: {"config": {llama_ref.Config keys}, "bos": 1, "tokens": [64 ids after BOS],
"logits_first_step_top5": [[id, logit], ...] (float64 logits after BOS, highest first),
"min_top2_margin": smallest (top1 - top2) logit gap over the 64 steps, "model_sha256": ...}.
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402

BOS, N_NEW = 1, 64


def load_llama2c_v0(path):
    """-> (Config, raw arrays in file order, HF-named params with permuted wq/wk), as float64."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 28:
        raise ValueError(f"{path}: shorter than the 28-byte header")
    D, F_, L, H, KV, V, S = struct.unpack("<7i", data[:28])
    shared = V > 0
    V = abs(V)
    if min(D, F_, L, H, KV, V, S) <= 0 or D % H or H % KV or (D // H) % 2:
        raise ValueError(f"{path}: implausible header {D, F_, L, H, KV, V, S}")
    hd = D // H
    shapes = [("token_embedding", (V, D)), ("rms_att", (L, D)), ("wq", (L, D, D)),
              ("wk", (L, KV * hd, D)), ("wv", (L, KV * hd, D)), ("wo", (L, D, D)),
              ("rms_ffn", (L, D)), ("w1", (L, F_, D)), ("w2", (L, D, F_)), ("w3", (L, F_, D)),
              ("rms_final", (D,)), ("freq_cis_real", (S, hd // 2)), ("freq_cis_imag", (S, hd // 2))]
    if not shared:
        shapes.append(("wcls", (V, D)))
    need = 28 + 4 * sum(int(np.prod(s)) for _, s in shapes)
    if len(data) != need:
        raise ValueError(f"{path}: {len(data)} bytes, the header implies {need}")
    raw, off = {}, 28
    for name, shape in shapes:
        n = int(np.prod(shape))
        raw[name] = torch.from_numpy(np.frombuffer(data, "<f4", n, off).reshape(shape).copy()).double()
        off += 4 * n
    cfg = ref.Config(dim=D, hidden_dim=F_, n_layers=L, n_heads=H, n_kv_heads=KV, vocab_size=V,
                     max_seq_len=S, norm_eps=1e-5, rope_theta=10000.0, tie_embeddings=shared, head="lm")
    return cfg, raw, to_hf(cfg, raw, permute=True)


def permute_rows(w, heads, hd):
    """Per head, rows [0,1,2,...,hd-1] -> [0,2,4,...,1,3,5,...] (adjacent pairs -> halves)."""
    return w.view(heads, hd // 2, 2, -1).transpose(1, 2).reshape(heads * hd, -1)


def to_hf(cfg, raw, permute):
    hd = cfg.head_dim
    p = {"model.embed_tokens.weight": raw["token_embedding"]}
    for l in range(cfg.n_layers):
        wq, wk = raw["wq"][l], raw["wk"][l]
        if permute:
            wq, wk = permute_rows(wq, cfg.n_heads, hd), permute_rows(wk, cfg.n_kv_heads, hd)
        pre = f"model.layers.{l}."
        p.update({
            pre + "input_layernorm.weight": raw["rms_att"][l],
            pre + "self_attn.q_proj.weight": wq,
            pre + "self_attn.k_proj.weight": wk,
            pre + "self_attn.v_proj.weight": raw["wv"][l],
            pre + "self_attn.o_proj.weight": raw["wo"][l],
            pre + "post_attention_layernorm.weight": raw["rms_ffn"][l],
            pre + "mlp.gate_proj.weight": raw["w1"][l],
            pre + "mlp.up_proj.weight": raw["w3"][l],
            pre + "mlp.down_proj.weight": raw["w2"][l],
        })
    p["model.norm.weight"] = raw["rms_final"]
    if not cfg.tie_embeddings:
        p["lm_head.weight"] = raw["wcls"]
    return p


def build(model_path):
    cfg, raw, params = load_llama2c_v0(model_path)
    S, hd = cfg.max_seq_len, cfg.head_dim
    cos, sin = ref.rope_cos_sin(0, S, hd, cfg.rope_theta, torch.float64)
    table_err = max((cos[:, : hd // 2] - raw["freq_cis_real"]).abs().max().item(),
                    (sin[:, : hd // 2] - raw["freq_cis_imag"]).abs().max().item())
    assert table_err < 1e-5, f"file's RoPE tables differ from ours by {table_err}"

    tokens, first = ref.greedy_decode(params, cfg, torch.tensor([[BOS]]), N_NEW)
    seq = torch.cat([torch.tensor([[BOS]]), tokens], dim=1)

    # One full forward over BOS + the generated tokens: same argmax at each step as the cached
    # decode, and the same logits as an adjacent-pairs model on the unpermuted weights.
    with torch.no_grad():
        full = ref.forward(params, cfg, seq[:, :-1])
        adj = ref.forward(to_hf(cfg, raw, permute=False), cfg, seq[:, :-1], rope=ref.rope_adjacent_pairs)
        unpermuted = ref.forward(to_hf(cfg, raw, permute=False), cfg, seq[:, :-1])
    assert torch.equal(full.argmax(-1), tokens), "KV-cached decode disagrees with a full forward"
    perm_err = (full - adj).abs().max().item()
    assert perm_err < 1e-9, f"permuted HF model and adjacent-pairs model differ by {perm_err}"
    # Without the permutation the two conventions must differ, or the check above proves nothing.
    assert (unpermuted - adj).abs().max().item() > 1e-3

    top2 = full.topk(2, dim=-1).values[0]
    margin = (top2[:, 0] - top2[:, 1]).min().item()
    p32 = {k: v.float() for k, v in params.items()}
    tokens32, _ = ref.greedy_decode(p32, cfg, torch.tensor([[BOS]]), N_NEW)
    assert torch.equal(tokens32, tokens), "float32 greedy decode differs from float64"

    vals, ids = first[0].topk(5)
    with open(model_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    out = {
        "config": cfg.to_dict(),
        "bos": BOS,
        "tokens": tokens[0].tolist(),
        "logits_first_step_top5": [[int(i), round(float(v), 7)] for i, v in zip(ids, vals)],
        "min_top2_margin": round(margin, 7),
        "model_sha256": sha,
    }
    return out, perm_err, table_err


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    data = os.environ.get("DATA") or os.path.join(root, "..", "shared", "data")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(data, "llama2c", "stories260K.bin"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "stories260K_greedy.json"))
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out, perm_err, table_err = build(args.model)
    text = json.dumps(out, indent=1) + "\n"
    if args.check:
        same = open(args.out).read() == text
        print(f"{args.out}: {'identical' if same else 'DIFFERENT'}")
        return 0 if same else 1
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}: permuted-vs-adjacent max|dlogit| {perm_err:.1e}, RoPE table err "
          f"{table_err:.1e}, min top-2 margin {out['min_top2_margin']:.4f}")
    print("tokens:", " ".join(map(str, out["tokens"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
