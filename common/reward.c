/*
 * reward — see reward.h for what a score is, the long-sequence rule and the batching.
 */
#include "reward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "util.h"

Err reward_load(RewardModel *rm, const char *dir, int batch) {
    memset(rm, 0, sizeof *rm);
    if (batch < 1) return err_set(ERR_INPUT, "%s: reward batch must be >= 1 (got %d)", dir, batch);
    Err rc = ckpt_load_model(&rm->model, dir, &rm->map);
    if (rc) return err_prefix(rc, "reward model: ");
    if (rm->model.cfg.head != HEAD_SCALAR) {
        model_free(&rm->model);
        ckpt_map_free(&rm->map);
        memset(rm, 0, sizeof *rm);
        return err_set(ERR_INPUT, "%s: not a reward model (a language-model head, not "
                       "LlamaForSequenceClassification)", dir);
    }
    if ((rc = ckpt_load_tokenizer(&rm->tok, dir, rm->model.cfg.vocab_size)) != ERR_OK) {
        model_free(&rm->model);
        ckpt_map_free(&rm->map);
        memset(rm, 0, sizeof *rm);
        return err_prefix(rc, "reward model: ");
    }
    rm->batch = batch;
    rm->max_len = rm->model.cfg.score_len > 0 ? rm->model.cfg.score_len : rm->model.cfg.max_seq_len;
    rm->tokens = xmalloc(sizeof(int32_t) * (size_t)batch * rm->max_len);
    rm->last = xmalloc(sizeof(int) * (size_t)batch);
    return ERR_OK;
}

void reward_free(RewardModel *rm) {
    model_free(&rm->model);
    ckpt_map_free(&rm->map);
    tokenizer_free(&rm->tok);
    free(rm->tokens);
    free(rm->last);
    free(rm->order);
    memset(rm, 0, sizeof *rm);
}

int reward_fit(int len, int max_len) { return len < max_len ? len : max_len; }

int reward_fill_row(int32_t *row, int T, const int32_t *ids, int len, int max_len) {
    int fit = reward_fit(len, max_len);
    ASSERT(len >= 1 && fit <= T);
    if (fit == len) {
        memcpy(row, ids, sizeof(int32_t) * (size_t)len);
    } else {
        /* Keep BOS and the tail: the score is read on the closing EOS, with the response in view. */
        row[0] = ids[0];
        memcpy(row + 1, ids + (len - (fit - 1)), sizeof(int32_t) * (size_t)(fit - 1));
    }
    for (int t = fit; t < T; t++) row[t] = TOKENIZER_EOS;
    return fit;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

Err reward_score_tokens(RewardModel *rm, const int32_t *const *ids, const int *lens, int n, float *scores) {
    const int V = rm->model.cfg.vocab_size, L = rm->max_len;
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1) return err_set(ERR_INPUT, "reward: sequence %d is empty", i);
        for (int t = 0; t < lens[i]; t++)
            if (ids[i][t] < 0 || ids[i][t] >= V)
                return err_set(ERR_INPUT, "reward: sequence %d, token %d: id %d outside the vocabulary [0, %d)", i, t,
                               ids[i][t], V);
    }
    if (n == 0) return ERR_OK;
    /* Longest first (then by index), so each batch pads little and the first one sizes the buffers.
     * The key packs (max_len - fit, index) so that a plain integer sort does it. */
    if (rm->order_cap < n) {
        free(rm->order);
        rm->order = xmalloc(sizeof(int64_t) * (size_t)n);
        rm->order_cap = n;
    }
    int64_t *order = rm->order;
    for (int i = 0; i < n; i++) order[i] = ((int64_t)(L - reward_fit(lens[i], L)) << 32) | i;
    qsort(order, (size_t)n, sizeof *order, cmp_i64);
    for (int start = 0; start < n; start += rm->batch) {
        int B = n - start < rm->batch ? n - start : rm->batch;
        int T = reward_fit(lens[order[start] & 0xffffffff], L);
        model_alloc_infer(&rm->model, rm->batch, T);
        int *last = rm->last;
        for (int b = 0; b < B; b++) {
            int i = (int)(order[start + b] & 0xffffffff);
            last[b] = reward_fill_row(rm->tokens + (size_t)b * T, T, ids[i], lens[i], L) - 1;
        }
        model_forward(&rm->model, rm->tokens, B, T);
        for (int b = 0; b < B; b++) {
            int i = (int)(order[start + b] & 0xffffffff);
            scores[i] = rm->model.acts.values[(size_t)b * T + last[b]];
        }
    }
    return ERR_OK;
}

Err reward_encode(const Tokenizer *t, const json_t *dialogue, const char *system, const char *response,
                  TokenList *out) {
    if (!json_is_array(dialogue)) return err_set(ERR_INPUT, "dialogue: expected a JSON array of {\"role\", \"content\"}");
    size_t nd = json_array_size(dialogue);
    const json_t *lastrole = json_object_get(json_array_get(dialogue, nd ? nd - 1 : 0), "role");
    if (nd == 0 || !json_is_string(lastrole) || strcmp(json_string_value(lastrole), "user") != 0)
        return err_set(ERR_INPUT, "dialogue: a prompt must end with a user turn");
    /* The prompt's turns (shared, not copied) plus the response as the last assistant turn. */
    json_t *d = json_array();
    for (size_t i = 0; i < nd; i++) json_array_append(d, json_array_get(dialogue, i));
    json_array_append_new(d, json_pack("{s:s, s:s}", "role", "assistant", "content", response));
    ChatTokens ct = {0};
    Err rc = chat_encode(t, d, system, (ChatLoss){.kind = CHAT_LOSS_LAST}, &ct);
    json_decref(d);
    if (rc) return rc;
    for (size_t i = 0; i < ct.n; i++) token_list_push(out, ct.ids[i]);
    chat_tokens_free(&ct);
    return ERR_OK;
}

Err reward_score_text(RewardModel *rm, const json_t *const *dialogues, const char *const *systems,
                      const char *const *responses, int n, float *scores) {
    TokenList *lists = xcalloc(n > 0 ? (size_t)n : 1, sizeof *lists);
    const int32_t **ids = xmalloc(sizeof *ids * (n > 0 ? (size_t)n : 1));
    int *lens = xmalloc(sizeof *lens * (n > 0 ? (size_t)n : 1));
    Err rc = ERR_OK;
    for (int i = 0; i < n && rc == ERR_OK; i++) {
        rc = reward_encode(&rm->tok, dialogues[i], systems ? systems[i] : NULL, responses[i], &lists[i]);
        if (rc) rc = err_prefix(rc, "reward: item %d: ", i);
        ids[i] = lists[i].ids;
        lens[i] = (int)lists[i].n;
    }
    if (rc == ERR_OK) rc = reward_score_tokens(rm, ids, lens, n, scores);
    for (int i = 0; i < n; i++) token_list_free(&lists[i]);
    free(lists);
    free(ids);
    free(lens);
    return rc;
}

/* ---- training ---------------------------------------------------------------------------------- */

Err reward_margin_table(const char *kind, const double *custom, int ncustom, float table[4]) {
    static const float SMALL[4] = {0.0f, 1.0f / 3.0f, 2.0f / 3.0f, 1.0f}, LARGE[4] = {0, 1, 2, 3};
    for (int r = 0; r < 4; r++) table[r] = 0.0f;
    if (strcmp(kind, "none") == 0) return ERR_OK;
    if (strcmp(kind, "small") == 0 || strcmp(kind, "large") == 0) {
        memcpy(table, kind[0] == 's' ? SMALL : LARGE, sizeof SMALL);
        return ERR_OK;
    }
    if (strcmp(kind, "custom") != 0)
        return err_set(ERR_INPUT, "loss.margin: unknown margin table '%s' (none, small, large, custom)", kind);
    if (ncustom != 4)
        return err_set(ERR_INPUT, "loss.margin_custom: expected 4 values (ratings 0..3), got %d", ncustom);
    for (int r = 0; r < 4; r++) {
        if (!isfinite(custom[r])) return err_set(ERR_INPUT, "loss.margin_custom[%d]: not a finite number", r);
        table[r] = (float)custom[r];
    }
    return ERR_OK;
}

double reward_rank_loss(float r_chosen, float r_rejected, float margin, float *d_chosen, float *d_rejected) {
    double d = (double)r_chosen - (double)r_rejected - (double)margin;
    /* -log sigmoid(d) = softplus(-d) = max(-d, 0) + log1p(exp(-|d|)); sigmoid(-d) likewise from exp(-|d|). */
    double e = exp(-fabs(d));
    double loss = (d < 0 ? -d : 0.0) + log1p(e);
    double s = d >= 0 ? e / (1.0 + e) : 1.0 / (1.0 + e); /* sigmoid(-d) */
    if (d_chosen) *d_chosen = (float)-s;
    if (d_rejected) *d_rejected = (float)s;
    return loss;
}

double reward_pairs_step(Model *m, const int32_t *tokens, const int *last, const float *margins, int B, int T,
                         float scale, int *correct, float *chosen, float *rejected) {
    ASSERT(m->cfg.head == HEAD_SCALAR && m->grads);
    model_forward(m, tokens, 2 * B, T);
    ModelActs *a = &m->acts;
    /* Only the 2B read positions carry a gradient; every other position of dvalues is zero. */
    memset(a->dvalues, 0, sizeof(float) * (size_t)2 * B * T);
    double sum = 0;
    int ok = 0;
    for (int b = 0; b < B; b++) {
        size_t ic = (size_t)b * T + last[b], ir = (size_t)(B + b) * T + last[B + b];
        float rc = a->values[ic], rr = a->values[ir], dc, dr;
        sum += reward_rank_loss(rc, rr, margins[b], &dc, &dr);
        a->dvalues[ic] = scale * dc;
        a->dvalues[ir] = scale * dr;
        ok += rc > rr;
        if (chosen) chosen[b] = rc;
        if (rejected) rejected[b] = rr;
    }
    model_backward(m, tokens, 2 * B, T);
    if (correct) *correct = ok;
    return sum;
}

float reward_combine(float r_help, float r_safe, int is_safety_prompt, float threshold, int *used_safety) {
    /* sigmoid(r_safe) < threshold, written without overflow for large |r_safe|. */
    float p_safe = r_safe >= 0 ? 1.0f / (1.0f + expf(-r_safe)) : expf(r_safe) / (1.0f + expf(r_safe));
    int safety = is_safety_prompt || p_safe < threshold;
    if (used_safety) *used_safety = safety;
    return safety ? r_safe : r_help;
}
