"""Checkpoint interoperability with Hugging Face transformers, both ways (`make check-interop`).

    .venv/bin/python tests/ref/check_interop.py [--bin build/bin] [--data ../shared/data] [--keep DIR]

Needs the venv with transformers (sh bench/setup_venv.sh --with-transformers) and a built ckpt_tool.
Not part of `make test`: CI never imports Python.

For each tiny Llama below (GQA untied LM, tied LM with theta 5e5 and eps 1e-6, an MQA reward model):
  1. transformers builds it (float32, weights N(0, 0.2^2) and norm gains 1 + 0.3 N(0, 1), large
     enough that attention is far from uniform and RoPE or GQA mistakes move the logits), and
     saves it with save_pretrained (safetensors);
  2. `ckpt_tool logits HF_DIR ids` — rlhf.c reading transformers' files — must match transformers'
     own outputs at every position;
  3. `ckpt_tool copy HF_DIR C_DIR` rewrites it with rlhf.c's writer; transformers'
     from_pretrained(C_DIR) must load it without missing/unexpected keys and give the same outputs;
     `ckpt_tool info C_DIR` must say the weights are memory-mapped.
Then stories260K: `ckpt_tool import-llama2c` writes a checkpoint directory; transformers loads it
and its logits over BOS + the 64 fixture ids match ours, and its greedy generate() gives those ids.

For the reward model every position's value is compared (hidden states times score.weight, what
LlamaForSequenceClassification computes before pooling), and the pooled last-position logit too.
Tolerance: max |ours - transformers| <= 1e-4 (float32 both sides). Prints one line per check and
the worst difference; exit status 1 on any failure.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

TOL = 1e-4
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

CASES = [
    ("lm_gqa", LlamaForCausalLM,
     dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
          vocab_size=64, max_position_embeddings=32, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)),
    ("lm_tied", LlamaForCausalLM,
     dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
          vocab_size=48, max_position_embeddings=32, rms_norm_eps=1e-6, rope_theta=500000.0, tie_word_embeddings=True)),
    ("rm_mqa", LlamaForSequenceClassification,
     dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
          vocab_size=64, max_position_embeddings=32, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
          num_labels=1)),
]

failures = []


def report(name, diff, extra=""):
    ok = diff <= TOL
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |diff| {diff:.2e}{extra}")
    if not ok:
        failures.append(name)


def ckpt_tool(bin_dir, *args):
    r = subprocess.run([os.path.join(bin_dir, "ckpt_tool"), *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"ckpt_tool {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def c_outputs(bin_dir, d, ids):
    out = json.loads(ckpt_tool(bin_dir, "logits", d, *ids))
    return torch.tensor(out["logits"] if out["head"] == "lm" else out["values"], dtype=torch.float32)


@torch.no_grad()
def hf_outputs(model, ids):
    """(T, V) logits, or (T,) values at every position plus the pooled value."""
    x = torch.tensor([ids])
    if isinstance(model, LlamaForSequenceClassification):
        h = model.model(x).last_hidden_state[0]
        return (h @ model.score.weight.T)[:, 0], model(x).logits[0, 0]
    return model(x).logits[0], None


def load_checked(cls, d):
    model, info = cls.from_pretrained(d, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        failures.append(f"from_pretrained({d})")
        print(f"FAIL from_pretrained({d}): {bad}")
    return model.eval()


def check_case(bin_dir, work, i, name, cls, kw):
    torch.manual_seed(1000 + i)
    model = cls(LlamaConfig(**kw, torch_dtype=torch.float32)).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.normal_(0, 0.2)
    hf_dir, c_dir = os.path.join(work, name + "_hf"), os.path.join(work, name + "_c")
    model.save_pretrained(hf_dir, safe_serialization=True)
    ids = torch.randint(0, kw["vocab_size"], (12,), generator=torch.Generator().manual_seed(i)).tolist()
    ref, pooled = hf_outputs(model, ids)
    report(f"{name}: transformers' save_pretrained -> rlhf.c", (c_outputs(bin_dir, hf_dir, ids) - ref).abs().max().item())
    ckpt_tool(bin_dir, "copy", hf_dir, c_dir)
    info = ckpt_tool(bin_dir, "info", c_dir)
    if "memory-mapped" not in info:
        failures.append(f"{name}: mapped")
        print(f"FAIL {name}: rlhf.c's own file is not mapped:\n{info}")
    ours = c_outputs(bin_dir, c_dir, ids)
    back = load_checked(cls, c_dir)
    ref2, pooled2 = hf_outputs(back, ids)
    report(f"{name}: rlhf.c's writer -> transformers' from_pretrained", (ours - ref2).abs().max().item())
    if pooled is not None:
        report(f"{name}: pooled reward (LlamaForSequenceClassification.logits)",
               max(abs(pooled2.item() - ours[-1].item()), abs(pooled.item() - ours[-1].item())))


def check_stories(bin_dir, data, work):
    d = os.path.join(work, "stories260K")
    ckpt_tool(bin_dir, "import-llama2c", os.path.join(data, "llama2c", "stories260K.bin"), d)
    with open(os.path.join(ROOT, "tests", "fixtures", "stories260K_greedy.json")) as f:
        fix = json.load(f)
    model = load_checked(LlamaForCausalLM, d)
    ids = [fix["bos"]] + fix["tokens"]
    ref, _ = hf_outputs(model, ids)
    report("stories260K: llama2.c -> rlhf.c import -> transformers (65 positions)",
           (c_outputs(bin_dir, d, ids) - ref).abs().max().item())
    with torch.no_grad():
        gen = model.generate(torch.tensor([[fix["bos"]]]), max_new_tokens=len(fix["tokens"]), do_sample=False,
                             pad_token_id=0)[0, 1:].tolist()
    same = gen == fix["tokens"]
    print(f"{'ok  ' if same else 'FAIL'} stories260K: transformers' greedy generate() = the fixture's 64 ids")
    if not same:
        failures.append("stories260K greedy")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--keep", help="write the checkpoints here and keep them")
    a = ap.parse_args()
    torch.set_num_threads(1)
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        work = a.keep or tmp
        os.makedirs(work, exist_ok=True)
        for i, (name, cls, kw) in enumerate(CASES):
            check_case(a.bin, work, i, name, cls, kw)
        check_stories(a.bin, a.data, work)
    print("interop: " + ("all ok" if not failures else f"{len(failures)} failed: {', '.join(failures)}"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
