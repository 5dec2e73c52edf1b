"""Cross-checks the fixtures against Hugging Face transformers' own Llama (optional; needs
`pip install transformers` in the venv, see bench/setup_venv.sh --with-transformers).

    .venv/bin/python tests/ref/check_hf.py

For each fixture: load its weights into LlamaForCausalLM (lm heads) or LlamaModel + a (1, D) score
layer (scalar head, as LlamaForSequenceClassification has, but read at every position), run the
stored batch in float64, and compare outputs, loss and every gradient with what llama_ref.py
stored. No attention_mask is passed: with right padding, the causal mask alone gives every valid
position the same context as ours, and padded positions match too. transformers computes RMSNorm
and the RoPE frequencies in float32 even in a float64 model, so agreement is ~1e-6, not 1e-12.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402
import safetensors_io  # noqa: E402
from gen_fixtures import FIXTURES  # noqa: E402


def hf_model(cfg):
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel
    hc = LlamaConfig(hidden_size=cfg.dim, intermediate_size=cfg.hidden_dim, num_hidden_layers=cfg.n_layers,
                     num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_kv_heads,
                     vocab_size=cfg.vocab_size, max_position_embeddings=cfg.max_seq_len,
                     rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
                     tie_word_embeddings=cfg.tie_embeddings, attention_bias=False,
                     attn_implementation="eager")
    if cfg.head == "lm":
        return LlamaForCausalLM(hc).double()
    m = torch.nn.Module()
    m.model = LlamaModel(hc).double()
    m.score = torch.nn.Linear(cfg.dim, 1, bias=False).double()
    return m


def check(name, tol=1e-5):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    meta, t = safetensors_io.load(os.path.join(root, "fixtures", f"ref_{name}.safetensors"))
    conf = json.loads(meta["config"])
    cfg = ref.Config(**{k: conf[k] for k in ref.Config.__dataclass_fields__})
    model = hf_model(cfg)
    names = [n for n, _ in ref.param_shapes(cfg)]
    state = {n: torch.from_numpy(t[n].copy()).double() for n in names}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    # A tied model has no lm_head.weight of its own; anything else missing is a naming bug.
    assert all(m == "lm_head.weight" and cfg.tie_embeddings for m in missing), missing
    if cfg.tie_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    tok = torch.from_numpy(t["input.tokens"].copy()).long()
    lengths = torch.from_numpy(t["input.lengths"].copy()).long()
    if cfg.head == "lm":
        out = model(input_ids=tok).logits
        loss = ref.lm_loss(out, torch.from_numpy(t["input.targets"].copy()),
                           torch.from_numpy(t["input.mask"].copy()).double())
        want = t["out.logits"]
    else:
        out = model.score(model.model(input_ids=tok).last_hidden_state).squeeze(-1)
        loss = ref.scalar_loss(out, lengths, torch.from_numpy(t["input.coef"].copy()).double(),
                               torch.from_numpy(t["input.vtarget"].copy()).double())
        want = t["out.values"]
    loss.backward()
    params = dict(model.named_parameters())
    worst = {"out": (out.detach() - torch.from_numpy(want.copy()).double()).abs().max().item(),
             "loss": abs(loss.item() - float(t["out.loss"][0]))}
    g = 0.0
    for n in names:
        p = params.get(n, params["model.embed_tokens.weight"] if n == "lm_head.weight" else None)
        ref_g = torch.from_numpy(t["grad." + n].copy()).double()
        g = max(g, ((p.grad - ref_g).abs().max() / ref_g.abs().max()).item())
    worst["grad_rel"] = g
    ok = all(v < tol for v in worst.values())
    print(f"{name}: {'ok' if ok else 'MISMATCH'} " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    return ok


def check_stories():
    """transformers' own greedy generate() on the permuted stories260K weights must give the
    token ids stored in stories260K_greedy.json."""
    import gen_stories_greedy as gs
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = os.environ.get("DATA") or os.path.join(root, "..", "..", "shared", "data")
    cfg, _, params = gs.load_llama2c_v0(os.path.join(data, "llama2c", "stories260K.bin"))
    with open(os.path.join(root, "fixtures", "stories260K_greedy.json")) as f:
        want = json.load(f)
    model = hf_model(cfg)
    missing, unexpected = model.load_state_dict(params, strict=False)
    assert not unexpected and missing == ["lm_head.weight"], (missing, unexpected)
    with torch.no_grad():
        out = model.generate(torch.tensor([[want["bos"]]]), max_new_tokens=len(want["tokens"]),
                             min_new_tokens=len(want["tokens"]), do_sample=False, num_beams=1,
                             pad_token_id=0, eos_token_id=None)
    ok = out[0, 1:].tolist() == want["tokens"]
    print(f"stories260K greedy via transformers generate(): {'ok' if ok else 'MISMATCH'}")
    return ok


def main():
    torch.set_num_threads(1)
    import transformers
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    return 0 if all([check(n) for n in FIXTURES] + [check_stories()]) else 1


if __name__ == "__main__":
    sys.exit(main())
