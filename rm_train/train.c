/*
 * rm_train train — a reward model from the store's comparisons (Llama 2 §3.2.2).
 *
 * Legend: B pairs per micro-batch, 2B sequences, T the longest (fitted) sequence of the micro-batch.
 *
 * The model: --init DIR is a chat model, whose LM head is dropped for a new scalar head (zeros, or
 * Normal(0, train.score_init_std)), every other tensor copied; or a reward model, trained further.
 *
 * The data: the comparisons of data.split on the --kind dimension, plus a share of the other
 * dimension's (data.other_share of the mix; Llama 2 trains helpfulness on an equal mix, safety on 90/10):
 * a seeded random subset of them, as many as the share asks for and the store has. Each pair is
 * encoded as the reward model reads it (reward.h).
 *
 * The loop, per optimizer step: grad_accum micro-batches of B pairs in a seeded order that changes each
 * epoch (with train.group_by_length = G, the shuffled pairs are cut into windows of G batches, each
 * window sorted by length and its batches shuffled again: every pair still once per epoch, the batches
 * of similar lengths, so that less of each forward is padding); each micro-batch is one (2B, T)
 * forward — chosen rows first, rejected rows after — then the ranking loss
 * -log sigmoid(r_c - r_r - m(rating)) on the 2B scores read at the last tokens, and one backward
 * (reward_pairs_step); then optim_finish_grads (clip), the learning rate (linear warm-up over
 * train.warmup_frac of the steps, at least train.warmup_min, then cosine to lr_floor * lr), AdamW.
 * The loss of a step is the mean over its B * grad_accum pairs.
 *
 * DIR/ckpt is rewritten every save_every steps, at --stop-at, on SIGINT/SIGTERM and at the end, with
 * the AdamW state and trainer_state.json (step, data position, config, data fingerprint), so that
 * --resume ends with the same bytes as a run that was never interrupted.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batching.h"
#include "ckpt.h"
#include "jsonl.h"
#include "optim.h"
#include "reward.h"
#include "rm_train.h"
#include "rng.h"
#include "trainlog.h"
#include "util.h"

typedef struct {
    Model m;
    Tokenizer tok;
    AdamW opt;
    RmPairs pairs;
    int64_t n_main;          /* pairs[0..n_main) are of --kind, the rest the other dimension's */
    int64_t step, epoch, pos, seen;
    uint32_t *perm;          /* order of the current epoch */
    uint32_t *lens;          /* per pair: the longer of its two fitted sequences */
    int64_t perm_epoch;
    Rng rng;                 /* seeded by train.seed; forked per use */
    int32_t *tokens;         /* (2B, Tmax) */
    int *last;               /* (2B) */
    float *margins;          /* (B) */
    float margin_table[4];
    int B, Tmax;
    int64_t group;           /* train.group_by_length: batches per length-sorted window (0 = off) */
    char *config_text;
    uint64_t fingerprint;
    double last_loss, last_acc;
} Trainer;

/* ---- the model ------------------------------------------------------------------------------------ */

/* A scalar-head model from dir: itself if it is a reward model, otherwise the chat model with its LM
 * head replaced. */
static Err load_init(Trainer *tr, const char *dir, const RmCfg *c) {
    Model src;
    Err rc = ckpt_load_model(&src, dir, NULL);
    if (rc) return rc;
    if ((rc = ckpt_load_tokenizer(&tr->tok, dir, src.cfg.vocab_size))) {
        model_free(&src);
        return rc;
    }
    if (src.cfg.head == HEAD_SCALAR) {
        tr->m = src;
        return ERR_OK;
    }
    ModelConfig mc = src.cfg;
    mc.head = HEAD_SCALAR;
    mc.tie_embeddings = 0;
    if ((rc = model_create(&tr->m, &mc, NULL))) {
        model_free(&src);
        tokenizer_free(&tr->tok);
        return rc;
    }
    for (int i = 0; i < tr->m.n_tensors; i++) {
        const ModelTensor *t = &tr->m.tensors[i];
        float *dst = tr->m.params + t->offset;
        if (strcmp(t->name, "score.weight") == 0) {
            Rng r = rng_fork(&tr->rng, 1);
            for (size_t j = 0; j < t->numel; j++) dst[j] = (float)c->score_init_std * rng_normal(&r);
            continue;
        }
        const ModelTensor *s = model_find_tensor(&src, t->name);
        ASSERT(s && s->numel == t->numel);
        memcpy(dst, src.params + s->offset, sizeof(float) * t->numel);
    }
    model_free(&src);
    return ERR_OK;
}

/* ---- the data ------------------------------------------------------------------------------------- */

/* The order of epoch `epoch`, a function of the seed, the epoch and the data alone (so --resume
 * rebuilds it): a shuffle, then train.group_by_length windows sorted by each pair's longer sequence. */
static void order_epoch(Trainer *tr, int64_t epoch) {
    for (int64_t i = 0; i < tr->pairs.n; i++) tr->perm[i] = (uint32_t)i;
    Rng r = rng_fork(&tr->rng, 1000 + (uint64_t)epoch);
    batching_shuffle(tr->perm, tr->pairs.n, &r);
    batching_group_by_length(tr->perm, tr->pairs.n, tr->lens, tr->B, tr->group, &r);
}

/* Keeps the pairs rated min_rating or more (store order); frees the others. */
static void keep_rated(RmPairs *p, int64_t min_rating) {
    int64_t k = 0;
    for (int64_t i = 0; i < p->n; i++) {
        if (p->v[i].rating >= min_rating) {
            p->v[k++] = p->v[i];
        } else {
            token_list_free(&p->v[i].ids[0]);
            token_list_free(&p->v[i].ids[1]);
        }
    }
    p->n = k;
}

/* The --kind pairs, then a seeded subset of the other dimension's so that they are `share` of the mix. */
static Err load_data(Trainer *tr, Store *db, const char *kind, const RmCfg *c) {
    const char *other_kind = strcmp(kind, "safety") == 0 ? "helpfulness" : "safety";
    double share = c->other_share >= 0 ? c->other_share : strcmp(kind, "safety") == 0 ? 0.1 : 0.5;
    Err rc = rm_pairs_load(&tr->pairs, db, &tr->tok, c->split, kind, c->iteration);
    if (rc) return rc;
    keep_rated(&tr->pairs, c->min_rating);
    tr->n_main = tr->pairs.n;
    if (share <= 0 || tr->n_main == 0) return ERR_OK;
    RmPairs other = {0};
    if ((rc = rm_pairs_load(&other, db, &tr->tok, c->split, other_kind, c->iteration))) return rc;
    keep_rated(&other, c->min_rating);
    int64_t want = llround((double)tr->n_main * share / (1.0 - share));
    if (want > other.n) want = other.n;
    uint32_t *idx = xmalloc(sizeof *idx * (size_t)(other.n ? other.n : 1));
    for (int64_t i = 0; i < other.n; i++) idx[i] = (uint32_t)i;
    Rng r = rng_fork(&tr->rng, 2);
    batching_shuffle(idx, other.n, &r);
    uint8_t *take = xcalloc((size_t)(other.n ? other.n : 1), 1);
    for (int64_t i = 0; i < want; i++) take[idx[i]] = 1;
    /* Move the chosen ones over in store order; the rest are freed with `other`. */
    for (int64_t i = 0; i < other.n; i++) {
        if (!take[i]) continue;
        if (tr->pairs.n == tr->pairs.cap) {
            tr->pairs.cap = tr->pairs.cap ? 2 * tr->pairs.cap : 256;
            tr->pairs.v = xrealloc(tr->pairs.v, sizeof *tr->pairs.v * (size_t)tr->pairs.cap);
        }
        tr->pairs.v[tr->pairs.n++] = other.v[i];
        memset(&other.v[i], 0, sizeof other.v[i]);
    }
    free(take);
    free(idx);
    rm_pairs_free(&other);
    return ERR_OK;
}

static uint64_t fingerprint(const RmPairs *p, int Tmax) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a over 32-bit words */
#define FP(x) (h = (h ^ (uint64_t)(uint32_t)(x)) * 0x100000001b3ULL)
    FP(Tmax);
    for (int64_t i = 0; i < p->n; i++) {
        FP(p->v[i].rating);
        FP(p->v[i].safety);
        for (int s = 0; s < 2; s++) {
            FP(p->v[i].ids[s].n);
            for (size_t t = 0; t < p->v[i].ids[s].n; t++) FP(p->v[i].ids[s].ids[t]);
        }
    }
#undef FP
    return h;
}

/* The next B pairs in the epoch's order into (2B, T) rows; returns T and adds the rows' unpadded
 * token count to *real. */
static int next_batch(Trainer *tr, int64_t *real) {
    const int B = tr->B;
    const RmPair *batch[B];
    for (int b = 0; b < B; b++) {
        if (tr->pos >= tr->pairs.n) {
            tr->epoch++;
            tr->pos = 0;
        }
        if (tr->perm_epoch != tr->epoch) {
            order_epoch(tr, tr->epoch);
            tr->perm_epoch = tr->epoch;
        }
        batch[b] = &tr->pairs.v[tr->perm[tr->pos++]];
    }
    int T = 1;
    for (int b = 0; b < B; b++)
        for (int s = 0; s < 2; s++) {
            int f = reward_fit((int)batch[b]->ids[s].n, tr->Tmax);
            if (f > T) T = f;
            *real += f;
        }
    for (int b = 0; b < B; b++) {
        for (int s = 0; s < 2; s++) {
            int row = s * B + b;
            tr->last[row] = reward_fill_row(tr->tokens + (size_t)row * T, T, batch[b]->ids[s].ids,
                                            (int)batch[b]->ids[s].n, tr->Tmax) - 1;
        }
        tr->margins[b] = tr->margin_table[batch[b]->rating];
    }
    return T;
}

/* ---- checkpoints ---------------------------------------------------------------------------------- */

static Err save(Trainer *tr, const char *ckpt_dir, const char *kind, bool finished) {
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, tr->fingerprint);
    json_t *st = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:b}", "program", PROG, "kind", kind, "step",
                           (json_int_t)tr->step, "epoch", (json_int_t)tr->epoch, "pos", (json_int_t)tr->pos, "pairs_seen",
                           (json_int_t)tr->seen, "data_fingerprint", fp, "config", tr->config_text, "finished", finished);
    ASSERT(st);
    CkptExtras ex = {.tokenizer = &tr->tok, .opt = &tr->opt, .trainer_state = st};
    Err rc = ckpt_save(ckpt_dir, &tr->m, &ex);
    json_decref(st);
    return rc;
}

static Err restore(Trainer *tr, const char *ckpt_dir, const char *kind) {
    json_t *st;
    Err rc = ckpt_load_trainer_state(ckpt_dir, &st);
    if (rc) return rc;
    json_int_t step, epoch, pos, seen;
    const char *fp, *cfg, *k;
    json_error_t je;
    char now[32];
    snprintf(now, sizeof now, "%016" PRIx64, tr->fingerprint);
    if (json_unpack_ex(st, &je, 0, "{s:s, s:I, s:I, s:I, s:I, s:s, s:s}", "kind", &k, "step", &step, "epoch", &epoch,
                       "pos", &pos, "pairs_seen", &seen, "data_fingerprint", &fp, "config", &cfg) != 0)
        rc = err_set(ERR_INPUT, "%s/trainer_state.json: %s (not written by rm_train?)", ckpt_dir, je.text);
    else if (strcmp(k, kind) != 0)
        rc = err_set(ERR_INPUT, "%s: the run trains a %s model, not %s", ckpt_dir, k, kind);
    else if (strcmp(cfg, tr->config_text) != 0)
        rc = err_set(ERR_INPUT, "%s: the configuration differs from the one the run started with; resume with the "
                     "same --config and --set (the saved one is in trainer_state.json)", ckpt_dir);
    else if (strcmp(fp, now) != 0)
        rc = err_set(ERR_INPUT, "%s: the training comparisons differ from the run's (fingerprint %s, now %s)", ckpt_dir,
                     fp, now);
    if (!rc) {
        tr->step = step;
        tr->epoch = epoch;
        tr->pos = pos;
        tr->seen = seen;
    }
    json_decref(st);
    return rc;
}

/* ---- the trainer ---------------------------------------------------------------------------------- */

int rm_train_run(const RmOpts *o, RmCfg *c) {
    Trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.perm_epoch = -1;
    rng_seed(&tr.rng, (uint64_t)c->seed);
    size_t len = strlen(o->out) + sizeof "/ckpt";
    char *ckpt_dir = xmalloc(len);
    snprintf(ckpt_dir, len, "%s/ckpt", o->out);
    Store *db = NULL;
    int64_t run_id = 0;
    TrainLog log = {0};
    bool have_model = false, have_opt = false;
    tr.config_text = config_dump_string(RM_SCHEMA, c);
    int rc = reward_margin_table(c->margin, c->margin_custom.items, (int)c->margin_custom.n, tr.margin_table);
    if (rc) goto done;

    const char *from = o->resume ? ckpt_dir : o->init;
    if ((rc = load_init(&tr, from, c))) goto done;
    have_model = true;
    tr.B = (int)c->batch_size;
    tr.group = c->group_by_length;
    tr.Tmax = c->seq_len > 0 ? (int)c->seq_len : tr.m.cfg.max_seq_len;
    if (tr.Tmax > tr.m.cfg.max_seq_len) {
        rc = err_set(ERR_INPUT, "train.seq_len %d exceeds the model's max_seq_len %d", tr.Tmax, tr.m.cfg.max_seq_len);
        goto done;
    }
    /* the checkpoint keeps its context (PPO's value model starts from it and reads every position)
     * and records the length it was trained on, which eval, score and the RL programs then read */
    tr.m.cfg.score_len = tr.Tmax < tr.m.cfg.max_seq_len ? tr.Tmax : 0;

    if ((rc = store_open(&db, o->cli.db))) goto done;
    if ((rc = load_data(&tr, db, o->kind, c))) goto done;
    if (tr.n_main == 0) {
        rc = err_set(ERR_INPUT, "%s: no %s comparisons in split '%s'%s", o->cli.db, o->kind, c->split,
                     c->iteration >= 0 ? " of that iteration" : "");
        goto done;
    }
    tr.fingerprint = fingerprint(&tr.pairs, tr.Tmax);
    const int64_t per_step = (int64_t)tr.B * c->grad_accum;
    const int64_t total = c->max_steps > 0 ? c->max_steps : (c->epochs * tr.pairs.n + per_step - 1) / per_step;
    int64_t warmup = (int64_t)ceil(c->warmup_frac * (double)total);
    if (warmup < c->warmup_min) warmup = c->warmup_min;
    if (warmup > total) warmup = total;
    fprintf(stderr, PROG ": %" PRId64 " %s pairs + %" PRId64 " from the other dimension; %" PRId64 " steps of %" PRId64
            " pairs, warm-up %" PRId64 "\n", tr.n_main, o->kind, tr.pairs.n - tr.n_main, total, per_step, warmup);

    if (o->resume) {
        if ((rc = ckpt_load_optimizer(&tr.opt, ckpt_dir, &tr.m))) goto done;
        have_opt = true;
        if ((rc = restore(&tr, ckpt_dir, o->kind))) goto done;
        if (tr.step >= total) {
            printf("%s: %s already finished at step %" PRId64 "\n", PROG, ckpt_dir, tr.step);
            goto cleanup;
        }
        fprintf(stderr, PROG ": resuming %s at step %" PRId64 " (epoch %" PRId64 ", pair %" PRId64 ")\n", ckpt_dir,
                tr.step, tr.epoch, tr.pos);
    } else {
        adamw_create(&tr.opt, tr.m.n_params);
        have_opt = true;
    }

    char *ins = rm_inputs_json(o, from);
    rc = store_run_begin(db, PROG, o->cli.iteration, tr.config_text, ins, &run_id);
    free(ins);
    if (rc) goto done;
    if ((rc = trainlog_open(&log, o->out, o->resume ? tr.step : -1, db, run_id))) goto done;

    model_alloc_train(&tr.m, 2 * tr.B, tr.Tmax);
    tr.tokens = xmalloc(sizeof *tr.tokens * (size_t)2 * tr.B * tr.Tmax);
    tr.last = xmalloc(sizeof *tr.last * (size_t)2 * tr.B);
    tr.margins = xmalloc(sizeof *tr.margins * (size_t)tr.B);
    tr.perm = xmalloc(sizeof *tr.perm * (size_t)tr.pairs.n);
    tr.lens = xmalloc(sizeof *tr.lens * (size_t)tr.pairs.n);
    for (int64_t i = 0; i < tr.pairs.n; i++) {
        int a = reward_fit((int)tr.pairs.v[i].ids[0].n, tr.Tmax), b = reward_fit((int)tr.pairs.v[i].ids[1].n, tr.Tmax);
        tr.lens[i] = (uint32_t)(a > b ? a : b);
    }
    LrSchedule sched = {.kind = LR_COSINE, .peak = (float)c->lr, .warmup = warmup, .total = total,
                        .floor_frac = (float)c->lr_floor};
    AdamWConfig acfg = {(float)c->beta1, (float)c->beta2, (float)c->eps, (float)c->weight_decay};
    const float scale = 1.0f / (float)per_step;
    trainlog_catch_signals();
    Progress prog;
    trainlog_progress_start(&prog, PROG, tr.step, total, c->progress_interval);
    const char *stopped = NULL;
    double t0 = trainlog_now();
    int64_t step0 = tr.step;

    while (tr.step < total) {
        model_zero_grads(&tr.m);
        double loss = 0;
        int64_t correct = 0, tokens = 0, real = 0;
        for (int64_t a = 0; a < c->grad_accum; a++) {
            int T = next_batch(&tr, &real), ok;
            loss += reward_pairs_step(&tr.m, tr.tokens, tr.last, tr.margins, tr.B, T, scale, &ok, NULL, NULL);
            correct += ok;
            tokens += 2 * (int64_t)tr.B * T;
        }
        loss /= (double)per_step;
        double norm;
        if ((rc = optim_finish_grads(tr.m.grads, tr.m.n_params, (float)c->grad_clip, &norm))) {
            rc = err_prefix(rc, "step %" PRId64 ": ", tr.step + 1);
            break;
        }
        float lr = lr_at(&sched, tr.step);
        adamw_step(&tr.opt, tr.m.params, tr.m.grads, tr.m.tensors, tr.m.n_tensors, &acfg, lr);
        tr.step++;
        tr.seen += per_step;
        tr.last_loss = loss;
        tr.last_acc = (double)correct / (double)per_step;
        if (tr.step % c->log_every == 0 || tr.step == total) {
            if ((rc = trainlog_metric(&log, tr.step, "loss", loss)) ||
                (rc = trainlog_metric(&log, tr.step, "acc", tr.last_acc)) ||
                (rc = trainlog_metric(&log, tr.step, "lr", lr)) || (rc = trainlog_metric(&log, tr.step, "grad_norm", norm)) ||
                (rc = trainlog_metric(&log, tr.step, "padding", 1.0 - (double)real / (double)tokens)))
                break;
        }
        trainlog_progress(&prog, tr.step, tokens, loss, lr);
        if (trainlog_stop_requested()) stopped = "interrupted";
        else if (o->stop_at > 0 && tr.step >= o->stop_at && tr.step < total) stopped = "stop-at";
        bool periodic = c->save_every > 0 && tr.step % c->save_every == 0 && tr.step < total;
        if ((stopped || periodic) && (rc = save(&tr, ckpt_dir, o->kind, false))) break;
        if (stopped) break;
    }
    trainlog_progress_end(&prog, tr.step);
    double secs = trainlog_now() - t0, rate = secs > 0 ? (double)(tr.step - step0) * per_step / secs : 0;
    bool interrupted = stopped && strcmp(stopped, "interrupted") == 0;
    if (!rc && !stopped && (rc = save(&tr, ckpt_dir, o->kind, true)) == ERR_OK)
        printf("%s: %s model, step %" PRId64 " loss %.4f acc %.3f, %" PRId64 " pairs (%.1f pairs/s); checkpoint %s\n",
               PROG, o->kind, tr.step, tr.last_loss, tr.last_acc, tr.seen, rate, ckpt_dir);
    if (!rc && stopped)
        fprintf(stderr, PROG ": %s after step %" PRId64 "; resumable checkpoint %s (continue with --resume)\n", stopped,
                tr.step, ckpt_dir);
    if (run_id) {
        json_t *out = json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:s?}", "checkpoint", ckpt_dir, "kind", o->kind, "step",
                                (json_int_t)tr.step, "loss", tr.last_loss, "acc", tr.last_acc, "pairs_per_s", rate,
                                "stopped", stopped);
        char *outs = jsonl_dumps(out, JSON_COMPACT);
        json_decref(out);
        Err e2 = store_run_end(db, run_id, outs, rc || interrupted ? "failed" : "ok");
        free(outs);
        if (!rc) rc = e2;
    }
    if (!rc && interrupted) {
        rc = ERR_RUNTIME; /* reported above */
        goto cleanup;
    }

done:
    if (rc) fprintf(stderr, PROG ": %s\n", err_msg());
cleanup:
    trainlog_close(&log);
    free(tr.tokens);
    free(tr.last);
    free(tr.margins);
    free(tr.perm);
    free(tr.lens);
    rm_pairs_free(&tr.pairs);
    if (have_opt) adamw_free(&tr.opt);
    if (have_model) {
        tokenizer_free(&tr.tok);
        model_free(&tr.m);
    }
    if (db) store_close(db);
    free(tr.config_text);
    free(ckpt_dir);
    return rc;
}
