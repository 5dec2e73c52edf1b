"""Llama-2 in plain PyTorch: the independent reference rlhf.c's C model is tested against.

Hugging Face Llama conventions throughout, so checkpoints and fixtures share tensor names:
  B = batch, T = time, D = dim, F = hidden_dim, H = n_heads, KV = n_kv_heads, hd = D / H, V = vocab.
  Weights are stored (out, in) and applied as y = x W^T.
  model.embed_tokens.weight                         (V, D)
  model.layers.<l>.input_layernorm.weight           (D)
  model.layers.<l>.self_attn.q_proj.weight          (H*hd, D)
  model.layers.<l>.self_attn.k_proj.weight          (KV*hd, D)
  model.layers.<l>.self_attn.v_proj.weight          (KV*hd, D)
  model.layers.<l>.self_attn.o_proj.weight          (D, H*hd)
  model.layers.<l>.post_attention_layernorm.weight  (D)
  model.layers.<l>.mlp.gate_proj.weight             (F, D)
  model.layers.<l>.mlp.up_proj.weight               (F, D)
  model.layers.<l>.mlp.down_proj.weight             (D, F)
  model.norm.weight                                 (D)
  lm_head.weight    (V, D)  head "lm", untied only; tied: logits = h @ embed^T
  score.weight      (1, D)  head "scalar" (reward / value model); no lm_head then
RMSNorm y = x / sqrt(mean(x^2) + eps) * w. RoPE is HF's rotate_half form: dimension i of the first
half of a head pairs with dimension i + hd/2, angle = pos * theta^(-2i/hd). Causal attention scaled
by 1/sqrt(hd); query head h reads kv head h // (H/KV). MLP = down(silu(gate(x)) * up(x)).
Batches are right-padded: positions >= lengths[b] hold token 0 and are ignored; because padding is
at the end, the causal mask alone keeps valid positions from seeing it.

The parameters are a plain dict name -> tensor (no nn.Module), so the same code runs in float64
for fixtures and float32 for the benchmark, and the dict order is the one param_shapes() gives.
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn.functional as F


@dataclass
class Config:
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    max_seq_len: int = 256
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_embeddings: bool = False
    head: str = "lm"  # "lm" (next-token logits) or "scalar" (one value per position)

    def __post_init__(self):
        assert self.dim % self.n_heads == 0, "dim must be a multiple of n_heads"
        assert self.n_heads % self.n_kv_heads == 0, "n_kv_heads must divide n_heads"
        assert (self.dim // self.n_heads) % 2 == 0, "RoPE needs an even head_dim"
        assert self.head in ("lm", "scalar")

    @property
    def head_dim(self):
        return self.dim // self.n_heads

    def to_dict(self):
        return asdict(self)


def param_shapes(cfg):
    """[(name, shape)] of every parameter, in the order fixtures and checkpoints list them."""
    D, F_, hd, V = cfg.dim, cfg.hidden_dim, cfg.head_dim, cfg.vocab_size
    out = [("model.embed_tokens.weight", (V, D))]
    for l in range(cfg.n_layers):
        p = f"model.layers.{l}."
        out += [
            (p + "input_layernorm.weight", (D,)),
            (p + "self_attn.q_proj.weight", (cfg.n_heads * hd, D)),
            (p + "self_attn.k_proj.weight", (cfg.n_kv_heads * hd, D)),
            (p + "self_attn.v_proj.weight", (cfg.n_kv_heads * hd, D)),
            (p + "self_attn.o_proj.weight", (D, cfg.n_heads * hd)),
            (p + "post_attention_layernorm.weight", (D,)),
            (p + "mlp.gate_proj.weight", (F_, D)),
            (p + "mlp.up_proj.weight", (F_, D)),
            (p + "mlp.down_proj.weight", (D, F_)),
        ]
    out.append(("model.norm.weight", (D,)))
    if cfg.head == "scalar":
        out.append(("score.weight", (1, D)))
    elif not cfg.tie_embeddings:
        out.append(("lm_head.weight", (V, D)))
    return out


def init_params(cfg, gen, dtype=torch.float32, std=0.02, norm_jitter=0.1):
    """Matrices ~ N(0, std^2); norm gains 1 + norm_jitter * N(0,1), so a test that ignored the
    gains (or applied them to the wrong side) would fail."""
    params = {}
    for name, shape in param_shapes(cfg):
        if len(shape) == 1:
            t = 1.0 + norm_jitter * torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            t = std * torch.randn(shape, generator=gen, dtype=torch.float64)
        params[name] = t.to(dtype)
    return params


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_cos_sin(pos0, T, hd, theta, dtype):
    """cos, sin of shape (T, hd) for positions pos0..pos0+T-1, each half of hd a copy of the other.
    Angles are computed in float64 whatever dtype is, as a C implementation using double would."""
    inv_freq = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.arange(pos0, pos0 + T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def rope_rotate_half(x, cos, sin):
    """x is (B, heads, T, hd); cos, sin (T, hd) from rope_cos_sin. HF convention."""
    return x * cos + rotate_half(x) * sin


def rope_adjacent_pairs(x, cos, sin):
    """llama2.c's convention, for cross-checks only: dimensions (2i, 2i+1) of a head rotate by
    pos * theta^(-2i/hd). Equals rope_rotate_half once each head's rows of wq and wk are reordered
    [even..., odd...]."""
    B, heads, T, hd = x.shape
    cos, sin = cos[:, : hd // 2], sin[:, : hd // 2]
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).reshape(B, heads, T, hd)


class KVCache:
    """Keys and values of every layer, (B, KV, max_T, hd) each, filled as decoding goes."""

    def __init__(self, cfg, B, max_T, dtype):
        shape = (B, cfg.n_kv_heads, max_T, cfg.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype) for _ in range(cfg.n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype) for _ in range(cfg.n_layers)]


def causal_mask(pos0, T, S):
    """(T, S) bool: query at position pos0+i may read key j when j <= pos0+i."""
    return torch.arange(S)[None, :] <= torch.arange(pos0, pos0 + T)[:, None]


def attention(q, k, v, allowed):
    """q (B,H,T,hd), k and v (B,KV,S,hd), allowed (T,S) -> (B,H,T,hd).
    Query head h reads kv head h // rep (rep = H/KV): heads kv*rep .. kv*rep+rep-1 share one kv
    head, so viewing q as (B, KV, rep*T, hd) puts each group's queries next to its keys, with no
    copy of k and v."""
    B, H, T, hd = q.shape
    KV, S = k.shape[1], k.shape[2]
    rep = H // KV
    scores = (q.reshape(B, KV, rep * T, hd) @ k.transpose(-1, -2)) / math.sqrt(hd)
    scores = scores.masked_fill(~allowed.repeat(rep, 1), float("-inf"))
    return (scores.softmax(dim=-1) @ v).view(B, H, T, hd)


def hidden_states(params, cfg, tokens, cache=None, pos0=0, rope=None):
    """tokens (B,T) at positions pos0.. -> final normed hidden states (B,T,D).
    With a cache, keys/values are written at pos0..pos0+T-1 and attention reads 0..pos0+T-1.
    rope(x, cos, sin) can be swapped (the llama2.c check uses adjacent pairs)."""
    rope = rope or rope_rotate_half
    B, T = tokens.shape
    H, KV, hd, eps = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.norm_eps
    x = params["model.embed_tokens.weight"][tokens.long()]
    cos, sin = rope_cos_sin(pos0, T, hd, cfg.rope_theta, x.dtype)
    allowed = causal_mask(pos0, T, pos0 + T)
    for l in range(cfg.n_layers):
        p = f"model.layers.{l}."
        h = rms_norm(x, params[p + "input_layernorm.weight"], eps)
        q = (h @ params[p + "self_attn.q_proj.weight"].T).view(B, T, H, hd).transpose(1, 2)
        k = (h @ params[p + "self_attn.k_proj.weight"].T).view(B, T, KV, hd).transpose(1, 2)
        v = (h @ params[p + "self_attn.v_proj.weight"].T).view(B, T, KV, hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if cache is not None:
            cache.k[l][:, :, pos0:pos0 + T] = k
            cache.v[l][:, :, pos0:pos0 + T] = v
            k, v = cache.k[l][:, :, :pos0 + T], cache.v[l][:, :, :pos0 + T]
        a = attention(q, k, v, allowed).transpose(1, 2).reshape(B, T, H * hd)
        x = x + a @ params[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, params[p + "post_attention_layernorm.weight"], eps)
        g = F.silu(h @ params[p + "mlp.gate_proj.weight"].T) * (h @ params[p + "mlp.up_proj.weight"].T)
        x = x + g @ params[p + "mlp.down_proj.weight"].T
    return rms_norm(x, params["model.norm.weight"], eps)


def forward(params, cfg, tokens, cache=None, pos0=0, rope=None):
    """lm head: logits (B,T,V); scalar head: values (B,T)."""
    x = hidden_states(params, cfg, tokens, cache, pos0, rope)
    if cfg.head == "scalar":
        return (x @ params["score.weight"].T).squeeze(-1)
    w = params["model.embed_tokens.weight" if cfg.tie_embeddings else "lm_head.weight"]
    return x @ w.T


def valid_mask(lengths, T, dtype):
    return (torch.arange(T)[None, :] < lengths[:, None].long()).to(dtype)


def lm_loss(logits, targets, mask):
    """sum(mask * CE) / sum(mask), CE of logits (B,T,V) against targets (B,T)."""
    B, T, V = logits.shape
    ce = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(-1).long(), reduction="none")
    return (ce.view(B, T) * mask).sum() / mask.sum()


def scalar_loss(values, lengths, coef, vtarget):
    """sum_b coef_b * values[b, len_b-1] + 0.5 * mean over valid (b,t) of (values - vtarget)^2:
    a reward-model-like term on the last token plus a value-regression term on every token, so
    both the 'last valid position' gather and the per-position path get gradients."""
    B, T = values.shape
    last = values[torch.arange(B), lengths.long() - 1]
    valid = valid_mask(lengths, T, values.dtype)
    return (coef * last).sum() + 0.5 * ((values - vtarget).pow(2) * valid).sum() / valid.sum()


def make_adamw(params, lr, betas, eps, weight_decay):
    """torch.optim.AdamW with decay on matrices only (ndim >= 2); norm gains get none."""
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


@torch.no_grad()
def greedy_decode(params, cfg, prompt, n_new, max_T=None):
    """prompt (B,P) -> (B, n_new) argmax tokens, with a KV cache: the prompt in one forward, then
    one position per step. Returns (tokens, logits of the first step)."""
    B, P = prompt.shape
    dtype = params["model.embed_tokens.weight"].dtype
    cache = KVCache(cfg, B, max_T or P + n_new, dtype)
    logits = forward(params, cfg, prompt, cache, 0)[:, -1]
    first = logits.clone()
    out = []
    for i in range(n_new):
        nxt = logits.argmax(dim=-1)
        out.append(nxt)
        if i + 1 < n_new:
            logits = forward(params, cfg, nxt[:, None], cache, P + i)[:, -1]
    return torch.stack(out, dim=1), first
