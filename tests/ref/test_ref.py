"""Unit tests of the reference itself (needs the venv; not part of `make test`):

    .venv/bin/python -m unittest discover -s tests/ref -p 'test_*.py'

The forward pass is checked against slow, obviously-correct formulations (a per-head attention
loop, a hand-rotated vector, a full forward for the KV cache); gradients come from autograd and
are not re-derived here. Both file readers are fed broken files.
"""
import json
import math
import os
import struct
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_stories_greedy as gs  # noqa: E402
import llama_ref as ref  # noqa: E402
import safetensors_io  # noqa: E402

CFG = ref.Config(dim=32, hidden_dim=48, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=40, max_seq_len=16)


def params64(cfg, seed=0):
    return ref.init_params(cfg, torch.Generator().manual_seed(seed), torch.float64, std=0.3)


class ModelTest(unittest.TestCase):
    def test_attention_matches_per_head_loop(self):
        g = torch.Generator().manual_seed(1)
        B, H, KV, T, hd = 2, 6, 3, 5, 4
        q = torch.randn(B, H, T, hd, generator=g, dtype=torch.float64)
        k = torch.randn(B, KV, T, hd, generator=g, dtype=torch.float64)
        v = torch.randn(B, KV, T, hd, generator=g, dtype=torch.float64)
        got = ref.attention(q, k, v, ref.causal_mask(0, T, T))
        want = torch.zeros_like(got)
        for b in range(B):
            for h in range(H):
                kv = h // (H // KV)
                for t in range(T):
                    s = torch.tensor([q[b, h, t] @ k[b, kv, j] / math.sqrt(hd) for j in range(t + 1)])
                    w = s.softmax(0)
                    want[b, h, t] = sum(w[j] * v[b, kv, j] for j in range(t + 1))
        self.assertLess((got - want).abs().max().item(), 1e-12)

    def test_rope_rotates_pairs_i_and_i_plus_half(self):
        hd, theta, pos = 8, 10000.0, 3
        x = torch.zeros(1, 1, pos + 1, hd, dtype=torch.float64)
        x[0, 0, pos, 1] = 1.0  # unit vector on dimension 1: pairs with dimension 1 + hd/2 = 5
        cos, sin = ref.rope_cos_sin(0, pos + 1, hd, theta, torch.float64)
        y = ref.rope_rotate_half(x, cos, sin)[0, 0, pos]
        ang = pos * theta ** (-2 * 1 / hd)
        want = torch.zeros(hd, dtype=torch.float64)
        want[1], want[5] = math.cos(ang), math.sin(ang)
        self.assertLess((y - want).abs().max().item(), 1e-15)

    def test_padding_does_not_change_valid_positions(self):
        p = params64(CFG)
        tok = torch.tensor([[5, 6, 7, 8, 9, 10]])
        padded = torch.tensor([[5, 6, 7, 0, 0, 0]])
        self.assertTrue(torch.allclose(ref.forward(p, CFG, tok)[:, :3], ref.forward(p, CFG, padded)[:, :3],
                                       atol=0, rtol=0))

    def test_kv_cache_decode_equals_full_forward(self):
        p = params64(CFG)
        prompt = torch.tensor([[1, 4, 9], [1, 2, 3]])
        out, first = ref.greedy_decode(p, CFG, prompt, 6)
        seq = torch.cat([prompt, out], 1)
        logits = ref.forward(p, CFG, seq[:, :-1])
        self.assertTrue(torch.equal(logits[:, prompt.shape[1] - 1:].argmax(-1), out))
        self.assertLess((logits[:, prompt.shape[1] - 1] - first).abs().max().item(), 1e-12)

    def test_tied_head_uses_embedding(self):
        tied = ref.Config(**dict(CFG.to_dict(), tie_embeddings=True))
        p = params64(tied)
        self.assertNotIn("lm_head.weight", p)
        untied = dict(p, **{"lm_head.weight": p["model.embed_tokens.weight"]})
        tok = torch.tensor([[3, 1, 4, 1, 5]])
        self.assertTrue(torch.equal(ref.forward(p, tied, tok), ref.forward(untied, CFG, tok)))

    def test_scalar_loss_by_hand(self):
        values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=torch.float64)
        lengths = torch.tensor([2, 3])
        coef = torch.tensor([0.5, -1.0], dtype=torch.float64)
        vt = torch.tensor([[0.0, 1.0, 9.0], [4.0, 4.0, 4.0]], dtype=torch.float64)
        want = 0.5 * 2.0 - 1.0 * 6.0 + 0.5 * (1 + 1 + 0 + 1 + 4) / 5
        self.assertAlmostEqual(ref.scalar_loss(values, lengths, coef, vt).item(), want, places=12)

    def test_adamw_groups_skip_decay_on_gains(self):
        p = {k: v.requires_grad_(True) for k, v in params64(CFG).items()}
        groups = ref.make_adamw(p, 1e-3, (0.9, 0.95), 1e-5, 0.1).param_groups
        self.assertTrue(all(t.dim() >= 2 for t in groups[0]["params"]) and groups[0]["weight_decay"] == 0.1)
        self.assertTrue(all(t.dim() == 1 for t in groups[1]["params"]) and groups[1]["weight_decay"] == 0.0)
        self.assertEqual(len(groups[0]["params"]) + len(groups[1]["params"]), len(p))

    def test_config_rejects_bad_shapes(self):
        with self.assertRaises(AssertionError):
            ref.Config(dim=30, hidden_dim=8, n_layers=1, n_heads=4, n_kv_heads=4, vocab_size=8)
        with self.assertRaises(AssertionError):
            ref.Config(dim=32, hidden_dim=8, n_layers=1, n_heads=4, n_kv_heads=3, vocab_size=8)


class SafetensorsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "t.safetensors")

    def tearDown(self):
        self.dir.cleanup()

    def write_raw(self, header, data=b""):
        h = json.dumps(header).encode()
        with open(self.path, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + data)

    def test_round_trip_and_alignment(self):
        t = {"b": torch.arange(6, dtype=torch.int64).view(2, 3), "a": torch.tensor([0.5, -2.0])}
        safetensors_io.save(self.path, t, {"config": "{}"})
        meta, back = safetensors_io.load(self.path)
        self.assertEqual(meta, {"config": "{}"})
        self.assertEqual(back["b"].dtype, np.dtype("<i4"))
        self.assertTrue((back["b"] == t["b"].numpy()).all() and (back["a"] == t["a"].numpy()).all())
        with open(self.path, "rb") as f:
            self.assertEqual(struct.unpack("<Q", f.read(8))[0] % 8, 0)

    def test_rejects_int_overflow(self):
        with self.assertRaises(ValueError):
            safetensors_io.save(self.path, {"x": torch.tensor([2 ** 40])})

    def test_bad_inputs(self):
        cases = {
            "short": lambda: open(self.path, "wb").write(b"\x01\x02"),
            "header past end": lambda: open(self.path, "wb").write(struct.pack("<Q", 99) + b"{}"),
            "bad dtype": lambda: self.write_raw({"x": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}, b"\0\0"),
            "shape mismatch": lambda: self.write_raw({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
            "past buffer": lambda: self.write_raw({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4),
            "gap": lambda: self.write_raw({"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8),
            "trailing": lambda: self.write_raw({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 6),
        }
        for name, make in cases.items():
            with self.subTest(name):
                make()
                with self.assertRaises(ValueError):
                    safetensors_io.load(self.path)


class Llama2cTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "m.bin")

    def tearDown(self):
        self.dir.cleanup()

    def write(self, header, n_floats):
        with open(self.path, "wb") as f:
            f.write(struct.pack("<7i", *header) + np.zeros(n_floats, "<f4").tobytes())

    def test_permutation_equals_adjacent_pairs(self):
        cfg = CFG
        g = torch.Generator().manual_seed(3)
        raw = {"token_embedding": torch.randn(cfg.vocab_size, cfg.dim, generator=g, dtype=torch.float64)}
        hd, L, D, F_ = cfg.head_dim, cfg.n_layers, cfg.dim, cfg.hidden_dim
        for name, shape in [("rms_att", (L, D)), ("wq", (L, D, D)), ("wk", (L, cfg.n_kv_heads * hd, D)),
                            ("wv", (L, cfg.n_kv_heads * hd, D)), ("wo", (L, D, D)), ("rms_ffn", (L, D)),
                            ("w1", (L, F_, D)), ("w2", (L, D, F_)), ("w3", (L, F_, D)), ("rms_final", (D,)),
                            ("wcls", (cfg.vocab_size, D))]:
            raw[name] = 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
        tok = torch.tensor([[1, 7, 3, 9, 2, 5]])
        hf = ref.forward(gs.to_hf(cfg, raw, permute=True), cfg, tok)
        adj = ref.forward(gs.to_hf(cfg, raw, permute=False), cfg, tok, rope=ref.rope_adjacent_pairs)
        self.assertLess((hf - adj).abs().max().item(), 1e-12)

    def test_bad_inputs(self):
        good = (8, 16, 1, 2, 2, 10, 4)  # D, F, L, H, KV, V, S with hd = 4
        n = 10 * 8 + 8 + 64 * 4 + 8 + 16 * 8 * 3 + 8 + 2 * 4 * 2
        self.write(good, n)
        self.assertEqual(gs.load_llama2c_v0(self.path)[0].dim, 8)
        for name, header, floats in [("one float short", good, n - 1), ("one float long", good, n + 1),
                                     ("zero dim", (0,) + good[1:], n), ("H % KV", (8, 16, 1, 2, 3, 10, 4), n),
                                     ("missing wcls", good[:5] + (-10,) + good[6:], n)]:
            with self.subTest(name):
                self.write(header, floats)
                with self.assertRaises(ValueError):
                    gs.load_llama2c_v0(self.path)
        with open(self.path, "wb") as f:
            f.write(b"\0" * 20)
        with self.assertRaises(ValueError):
            gs.load_llama2c_v0(self.path)


if __name__ == "__main__":
    unittest.main()
