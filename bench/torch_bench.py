"""The PyTorch side of `make bench`: the same Llama-2 shapes rlhf.c benchmarks, run by the plain
PyTorch reference in tests/ref/llama_ref.py on this machine's CPU.

    .venv/bin/python bench/torch_bench.py --config c1|c2 --threads N [--quick]

Prints one line per result, `torch <config> <metric> <value>`, and `torch version <x>`:
  threads, params  the thread count and the number of parameters (a check that shapes match)
  train_tok_s      forward + cross-entropy over every token + backward + clip_grad_norm_(1.0) +
                   AdamW step, as bench_model times it; tokens per second = B*T / step time
  decode_b1_tok_s  greedy decoding of 128 new tokens from BOS with a KV cache, batch 1 and 8;
  decode_b8_tok_s  tokens per second = batch * 128 / time of one decode (prefill of BOS included)
  sgemm_1024x288x768_gflops  torch.mm of (1024 x 288) by (288 x 768) float32, for context: torch
                   1.12's own MKL sgemm, not OpenBLAS
Configs (untied lm head, random init, float32):
  c1  dim 288, 6 layers, 6 heads, 6 kv heads, hidden 768, vocab 32000, seq 256; train B=4, T=256
  c2  dim 64, 5 layers, 8 heads, 4 kv heads, hidden 172, vocab 512, seq 512;   train B=2, T=512
Every rate is computed from the median time of one unit (a training step, a 128-token decode, one
sgemm) over at least 3 units and about 10 s of training, 3 s of decoding per batch size, 2 s of
sgemm (--quick: 1 s, 3 runs, 0.5 s), after warm-up; the machine is shared, and a median shrugs off
short bursts of other work. Attention is the eager formulation of llama_ref.py (scores,
causal mask, softmax), as torch 1.12 has no fused attention.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import llama_ref as ref  # noqa: E402

CONFIGS = {
    "c1": dict(cfg=ref.Config(dim=288, hidden_dim=768, n_layers=6, n_heads=6, n_kv_heads=6, vocab_size=32000,
                              max_seq_len=256), batch=4, seq=256),
    "c2": dict(cfg=ref.Config(dim=64, hidden_dim=172, n_layers=5, n_heads=8, n_kv_heads=4, vocab_size=512,
                              max_seq_len=512), batch=2, seq=512),
}
BOS, NEW_TOKENS = 1, 128


def timed(fn, seconds, min_runs):
    """Median wall time of fn() over at least min_runs calls and about `seconds` in all. The
    machine is shared, so the median of many short timings beats one long average: a burst of
    someone else's build spoils a few samples, not the result."""
    times, t0 = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_train(cfg, B, T, seconds, warmup, gen):
    params = {k: v.requires_grad_(True) for k, v in ref.init_params(cfg, gen, torch.float32).items()}
    opt = ref.make_adamw(params, lr=1e-4, betas=(0.9, 0.95), eps=1e-5, weight_decay=0.1)
    tokens = torch.randint(0, cfg.vocab_size, (B, T), generator=gen)
    targets = torch.randint(0, cfg.vocab_size, (B, T), generator=gen)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = ref.forward(params, cfg, tokens)
        F.cross_entropy(logits.view(B * T, -1), targets.view(-1)).backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()

    for _ in range(warmup):
        step()
    return B * T / timed(step, seconds, 3)


def bench_decode(cfg, batch, seconds, gen):
    params = ref.init_params(cfg, gen, torch.float32)
    prompt = torch.full((batch, 1), BOS, dtype=torch.long)
    ref.greedy_decode(params, cfg, prompt, 8)  # warm-up: first-call allocations, thread pool start

    def run():
        out, _ = ref.greedy_decode(params, cfg, prompt, NEW_TOKENS)
        assert out.shape == (batch, NEW_TOKENS)

    return batch * NEW_TOKENS / timed(run, seconds, 3)


def bench_sgemm(seconds):
    a, b = torch.randn(1024, 288), torch.randn(288, 768)
    for _ in range(5):
        torch.mm(a, b)
    return 2.0 * 1024 * 288 * 768 / timed(lambda: torch.mm(a, b), seconds, 20) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[4:]))
    ap.add_argument("--config", required=True, choices=sorted(CONFIGS), help="model and batch shape")
    ap.add_argument("--threads", type=int, required=True, help="torch intra-op threads (inter-op: 1)")
    ap.add_argument("--quick", action="store_true", help="short timings, for a smoke test")
    ap.add_argument("--seed", type=int, default=1234, help="weights and data seed (default 1234)")
    ap.add_argument("--version", action="version", version=f"torch_bench (torch {torch.__version__})")
    args = ap.parse_args()
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.set_default_dtype(torch.float32)

    spec, name = CONFIGS[args.config], args.config
    gen = torch.Generator().manual_seed(args.seed)
    train_s, warmup, decode_s = (1.0, 1, 0.0) if args.quick else (10.0, 3, 3.0)
    print(f"torch version {torch.__version__}", flush=True)
    print(f"torch {name} threads {torch.get_num_threads()}", flush=True)
    n_params = sum(s.numel() for s in (torch.Size(sh) for _, sh in ref.param_shapes(spec["cfg"])))
    print(f"torch {name} params {n_params}", flush=True)
    print(f"torch {name} train_tok_s {bench_train(spec['cfg'], spec['batch'], spec['seq'], train_s, warmup, gen):.1f}",
          flush=True)
    with torch.no_grad():
        for b in (1, 8):
            print(f"torch {name} decode_b{b}_tok_s {bench_decode(spec['cfg'], b, decode_s, gen):.1f}", flush=True)
        print(f"torch {name} sgemm_1024x288x768_gflops {bench_sgemm(0.5 if args.quick else 2.0):.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
