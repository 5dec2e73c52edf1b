#!/bin/sh
# A safety reward model on real data: Anthropic hh-rlhf harmless-base (`make hh-rm`).
#
#   sh examples/hh_rm.sh [FILE.jsonl[.gz]...]      default: ../shared/data/hh-rlhf/harmless-base/test.jsonl.gz
#
# 1. import the comparisons into a fresh store (dimension safety) and split them 80/20 by prompt with
#    prefs_db split (a hash of the dialogue: deterministic, no dialogue on both sides);
# 2. train a BPE tokenizer and pretrain a small Llama (1.05M parameters: dim 128, 4 layers, context
#    256) on the training transcripts only, in the chat template's shape: one document (BOS ... EOS)
#    per exchange "[INST] user [/INST] answer ", packed in order, so that the LM has seen the
#    </s><s> between turns and the EOS on which the reward model reads its score;
# 3. train a safety reward model from it with rm_train, once per seed in SEEDS;
# 4. report held-out accuracy (with standard errors) beside two baselines fitted on the same training
#    pairs: "the shorter answer wins" and a bag-of-words logistic regression, and the accuracy on the
#    held-out pairs where the chosen answer is the longer one (a length-only model fails those).
#
# Settings are fixed in this file (and were chosen with VALIDATE=1, never on the test split).
# VALIDATE=1 runs the same pipeline with the test split removed and the training prompts split 80/20
# again: the "held-out" numbers it prints are validation numbers.
#
# Environment: OUT (default runs/hh_rm), BIN (default build/bin), SEEDS (default "1 2"),
# THREADS (default 2), and the settings below: PRETRAIN_STEPS, DIM, HIDDEN, LAYERS, CTX (the LM),
# TURN_DOCS (0: one pretraining document per whole transcript, as before), RM_EPOCHS, RM_LR, RM_WD,
# RM_MARGIN, RM_SEQ (the reward model; see docs/rm_train.md for what was tried). KEEP=1 keeps the
# store, split and pretrained model of an earlier run in OUT and trains the reward models again.
set -eu
BIN=${BIN:-build/bin}
OUT=${OUT:-runs/hh_rm}
SEEDS=${SEEDS:-"1 2"}
THREADS=${THREADS:-2}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-1000}
RM_EPOCHS=${RM_EPOCHS:-3}
RM_LR=${RM_LR:-1e-4}
RM_WD=${RM_WD:-0.1}
RM_SEQ=${RM_SEQ:-0}
RM_MARGIN=${RM_MARGIN:-none}
VOCAB=${VOCAB:-1024}
DIM=${DIM:-128}
HIDDEN=${HIDDEN:-344}
LAYERS=${LAYERS:-4}
CTX=${CTX:-256}
TURN_DOCS=${TURN_DOCS:-1}
[ $# -gt 0 ] || set -- ../shared/data/hh-rlhf/harmless-base/test.jsonl.gz
for f in "$@"; do [ -r "$f" ] || { echo "hh_rm: cannot read $f" >&2; exit 2; }; done
for p in prefs_db tokenizer_train sft rm_train; do
    [ -x "$BIN/$p" ] || { echo "hh_rm: $BIN/$p is missing: run make first" >&2; exit 2; }
done
command -v python3 >/dev/null || { echo "hh_rm: python3 is needed for the baselines" >&2; exit 2; }
db="$OUT/hh.db"
log() { echo "hh_rm: $*" >&2; }
if [ "${KEEP:-0}" = 1 ] && [ -s "$OUT/base/ckpt/model.safetensors" ]; then
    log "KEEP=1: reusing the store, split and pretrained model in $OUT"
else
rm -rf "$OUT"
mkdir -p "$OUT"

# ---- 1. data and split ---------------------------------------------------------------------------
"$BIN/prefs_db" --db "$db" init >/dev/null
for f in "$@"; do
    case "$f" in *.gz) gzip -dc "$f" ;; *) cat "$f" ;; esac
done | "$BIN/prefs_db" --db "$db" import --format hh-rlhf --dimension safety - 2>"$OUT/import.log"
"$BIN/prefs_db" --db "$db" split --test-fraction 0.2 --seed 0 --force >/dev/null
if [ "${VALIDATE:-0}" = 1 ]; then
    # the test split goes; the training prompts are split again, with another seed
    sqlite3 "$db" "delete from comparisons where split = 'test'"
    "$BIN/prefs_db" --db "$db" split --test-fraction 0.2 --seed 1 --force >/dev/null
    log "VALIDATE=1: the held-out numbers below are on a validation split of the training prompts"
fi
"$BIN/prefs_db" --db "$db" export --table comparisons --split train >"$OUT/train.jsonl"
"$BIN/prefs_db" --db "$db" export --table comparisons --split test >"$OUT/test.jsonl"
log "$(wc -l <"$OUT/train.jsonl") training pairs, $(wc -l <"$OUT/test.jsonl") held-out pairs"

# ---- 2. tokenizer and pretraining on the training transcripts ------------------------------------
# One document per transcript (dialogue + chosen, dialogue + rejected), blank lines inside turns
# squeezed so that sft --pretrain (documents end at a blank line) keeps each transcript whole.
python3 - "$OUT/train.jsonl" "$TURN_DOCS" >"$OUT/transcripts.txt" <<'EOF'
import json, re, sys
def clean(s):
    return re.sub(r"\s*\n\s*", "\n", s.strip())
turn_docs = sys.argv[2] == "1"
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    turns = r["prompt"]["dialogue"]
    for answer in (r["chosen"], r["rejected"]):
        parts = []
        for i, t in enumerate(turns + [{"role": "assistant", "content": answer}]):
            parts.append(("[INST] %s [/INST]" if t["role"] == "user" else "%s") % clean(t["content"]))
        if turn_docs:
            # one document (BOS ... EOS) per exchange, "[INST] user [/INST] answer ", as the chat template
            # encodes each turn; packing keeps a transcript's turns in order, one after the other
            for i in range(0, len(parts), 2):
                print(" ".join(parts[i:i + 2]) + " \n")
        else:
            print(" ".join(parts) + "\n")
EOF
"$BIN/tokenizer_train" --vocab "$VOCAB" --out "$OUT/tok.bin" "$OUT/transcripts.txt" >/dev/null
cat >"$OUT/pretrain.yaml" <<EOF
model: {dim: $DIM, hidden_dim: $HIDDEN, n_layers: $LAYERS, n_heads: 4, n_kv_heads: 4, vocab_size: $VOCAB, max_seq_len: $CTX}
train: {seq_len: $CTX, batch_size: 16, steps: $PRETRAIN_STEPS, lr: 1.0e-3, warmup: 30, lr_floor: 0.1, eval_every: 100, log_every: 10}
data: {eval_fraction: 0.02}
EOF
t0=$(date +%s)
"$BIN/sft" --pretrain --config "$OUT/pretrain.yaml" --tokenizer "$OUT/tok.bin" --threads "$THREADS" \
    --out "$OUT/base" "$OUT/transcripts.txt" >"$OUT/pretrain.out" 2>"$OUT/pretrain.log"
log "pretraining: $(cat "$OUT/pretrain.out") ($(( $(date +%s) - t0 )) s)"
fi

# ---- 3. safety reward models ---------------------------------------------------------------------
for seed in $SEEDS; do
    t0=$(date +%s)
    "$BIN/rm_train" --kind safety --config configs/rm_train.yaml --init "$OUT/base/ckpt" --db "$db" \
        --threads "$THREADS" --seed "$seed" --set train.epochs="$RM_EPOCHS" --set train.lr="$RM_LR" \
        --set train.batch_size=16 --set data.other_share=0 --set loss.margin="$RM_MARGIN" \
        --set train.weight_decay="$RM_WD" --set train.seq_len="$RM_SEQ" \
        --out "$OUT/rm_$seed" >"$OUT/rm_$seed.out" 2>"$OUT/rm_$seed.log"
    log "seed $seed: $(cat "$OUT/rm_$seed.out") ($(( $(date +%s) - t0 )) s)"
    "$BIN/rm_train" eval --model "$OUT/rm_$seed/ckpt" --db "$db" --threads "$THREADS" >"$OUT/eval_$seed.txt" 2>>"$OUT/rm_$seed.log"
    "$BIN/rm_train" score --model "$OUT/rm_$seed/ckpt" --threads "$THREADS" - <"$OUT/test.jsonl" >"$OUT/test_scored_$seed.jsonl" \
        2>>"$OUT/rm_$seed.log"
done

# ---- 4. baselines and the report -----------------------------------------------------------------
set --
for seed in $SEEDS; do set -- "$@" "$OUT/test_scored_$seed.jsonl"; done
python3 - "$OUT/train.jsonl" "$OUT/test.jsonl" "$@" <<'EOF' | tee "$OUT/report.txt"
import json, math, random, re, sys

def load(path):
    return [json.loads(l) for l in open(path, encoding="utf-8")]

train, test, scored = load(sys.argv[1]), load(sys.argv[2]), [load(p) for p in sys.argv[3:]]

def acc(rows, right):
    """accuracy (%) and its standard error over rows; right(row) is 1, 0.5 (tie) or 0"""
    n = len(rows)
    if n == 0:
        return float("nan"), float("nan"), 0
    p = sum(right(r) for r in rows) / n
    return 100 * p, 100 * math.sqrt(p * (1 - p) / n), n

def nbytes(s):  # lengths in UTF-8 bytes, as rm_train eval measures them
    return len(s.encode("utf-8"))

def sign(x):
    return 1.0 if x > 0 else 0.5 if x == 0 else 0.0

longer = [r for r in test if nbytes(r["chosen"]) > nbytes(r["rejected"])]

# bag of words: word counts of an answer; a pairwise logistic regression p(chosen) = sigmoid(w . (f(c) - f(r)))
# fitted by full-batch gradient descent with an L2 penalty chosen by 5-fold cross-validation on train.
def words(s):
    f = {}
    for w in re.findall(r"[a-z']+", s.lower()):
        f[w] = f.get(w, 0) + 1
    return f

def diff(r):
    d = dict(words(r["chosen"]))
    for w, c in words(r["rejected"]).items():
        d[w] = d.get(w, 0) - c
    return {w: c for w, c in d.items() if c}

def fit(rows, l2, epochs=150, lr=0.5):
    xs = [diff(r) for r in rows]
    w = {}
    for _ in range(epochs):
        g = {}
        for x in xs:
            z = sum(w.get(k, 0.0) * v for k, v in x.items())
            s = 1.0 / (1.0 + math.exp(z)) if z > -30 else 1.0  # 1 - sigmoid(z): the gradient of -log sigmoid
            for k, v in x.items():
                g[k] = g.get(k, 0.0) - s * v
        for k in set(w) | set(g):
            w[k] = w.get(k, 0.0) - lr * (g.get(k, 0.0) / len(xs) + l2 * w.get(k, 0.0))
    return w

def bow_right(w):
    return lambda r: sign(sum(w.get(k, 0.0) * v for k, v in diff(r).items()))

rng = random.Random(0)
folds = list(range(len(train)))
rng.shuffle(folds)
best = None
for l2 in (3e-2, 1e-2, 3e-3, 1e-3):
    cv = []
    for k in range(5):
        held = set(folds[k::5])
        w = fit([r for i, r in enumerate(train) if i not in held], l2, epochs=50)
        cv.append(acc([r for i, r in enumerate(train) if i in held], bow_right(w))[0])
    m = sum(cv) / len(cv)
    if best is None or m > best[1]:
        best = (l2, m)
w = fit(train, best[0])

print("hh-rlhf harmless-base: %d training pairs, %d held-out pairs (%d with the chosen answer longer)"
      % (len(train), len(test), len(longer)))
print("%-44s %16s %22s" % ("", "held-out acc (%)", "chosen-is-longer (%)"))
def row(name, right, rows=test):
    a, se, _ = acc(rows, right)
    b, seb, _ = acc([r for r in rows if nbytes(r["chosen"]) > nbytes(r["rejected"])], right)
    print("%-44s %9.1f +- %4.1f %15.1f +- %4.1f" % (name, a, se, b, seb))
    return a, b
row("shorter answer wins", lambda r: sign(nbytes(r["rejected"]) - nbytes(r["chosen"])))
row("bag-of-words logistic regression (l2 %g)" % best[0], bow_right(w))
ms, ls = [], []
for i, rows in enumerate(scored):
    a, b = row("reward model, seed %s" % sys.argv[3 + i].rsplit("_", 1)[1].split(".")[0],
               lambda r: sign(r["chosen_score"] - r["rejected_score"]), rows)
    ms.append(a)
    ls.append(b)
if ms:
    print("%-44s %9.1f %23.1f" % ("reward model, mean over %d seeds" % len(ms), sum(ms) / len(ms), sum(ls) / len(ls)))
EOF
log "report: $OUT/report.txt; Table 8 per seed: $OUT/eval_*.txt"
