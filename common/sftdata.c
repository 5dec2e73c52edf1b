/* sftdata — see sftdata.h for the item layout, the split and the order. */
#include "sftdata.h"

#include <string.h>

#include "rng.h"
#include "util.h"

void sftdata_init(SftData *d, int T) {
    ASSERT(T >= 1);
    memset(d, 0, sizeof *d);
    d->T = T;
    d->perm_epoch = -1;
}

void sftdata_free(SftData *d) {
    free(d->ids);
    free(d->mask);
    free(d->off);
    free(d->len);
    free(d->held);
    free(d->hold_ids);
    free(d->hold_mask);
    free(d->train);
    free(d->eval);
    free(d->perm);
    memset(d, 0, sizeof *d);
}

/* ---- building ---------------------------------------------------------------------------------- */

static void push_tokens(SftData *d, const int32_t *ids, const uint8_t *mask, size_t n, uint8_t fill) {
    if (d->n + n > d->cap) {
        size_t cap = d->cap ? d->cap : 4096;
        while (cap < d->n + n) cap *= 2;
        d->ids = xrealloc(d->ids, cap * sizeof *d->ids);
        d->mask = xrealloc(d->mask, cap);
        d->cap = cap;
    }
    memcpy(d->ids + d->n, ids, n * sizeof *ids);
    if (mask) memcpy(d->mask + d->n, mask, n);
    else memset(d->mask + d->n, fill, n);
    d->n += n;
}

static void push_item(SftData *d, int64_t off, int32_t len, uint8_t held) {
    if (d->n_items == d->cap_items) {
        d->cap_items = d->cap_items ? 2 * d->cap_items : 256;
        d->off = xrealloc(d->off, d->cap_items * sizeof *d->off);
        d->len = xrealloc(d->len, d->cap_items * sizeof *d->len);
        d->held = xrealloc(d->held, d->cap_items);
    }
    d->off[d->n_items] = off;
    d->len[d->n_items] = len;
    d->held[d->n_items] = held;
    d->n_items++;
}

static int blank_line_at(const char *s, size_t len, size_t i, size_t *next) {
    /* s[i] == '\n': is the next line empty (only spaces, tabs, \r)? *next = index of its '\n' */
    size_t j = i + 1;
    while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r')) j++;
    if (j < len && s[j] == '\n') {
        *next = j;
        return 1;
    }
    return 0;
}

static int only_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

static void add_document(SftData *d, const Tokenizer *t, const char *s, size_t n, TokenList *tl) {
    /* drop the document's trailing newlines: the blank line is the separator, not content */
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    if (n == 0 || only_space(s, n)) return;
    tl->n = 0;
    tokenizer_encode(t, s, n, true, true, tl);
    push_tokens(d, tl->ids, NULL, tl->n, 1);
}

void sftdata_add_text(SftData *d, const Tokenizer *t, const char *text, size_t len) {
    TokenList tl = {0};
    size_t start = 0, i = 0;
    while (i < len) {
        size_t next;
        if (text[i] == '\n' && blank_line_at(text, len, i, &next)) {
            add_document(d, t, text + start, i - start, &tl);
            /* swallow the whole run of blank lines */
            i = next;
            while (i < len && text[i] == '\n' && blank_line_at(text, len, i, &next)) i = next;
            start = i + 1;
            i = start;
            continue;
        }
        i++;
    }
    if (start < len) add_document(d, t, text + start, len - start, &tl);
    token_list_free(&tl);
}

static void pack_stream(SftData *d, uint8_t held) {
    size_t T = (size_t)d->T;
    /* windows overlap by one token: the last target of one is the first input of the next */
    size_t at = d->packed;
    while (at + 1 < d->n) {
        size_t len = d->n - at < T + 1 ? d->n - at : T + 1;
        push_item(d, (int64_t)at, (int32_t)len, held);
        at += len - 1;
    }
    d->packed = d->n;
}

void sftdata_pack(SftData *d) {
    pack_stream(d, 0);
    if (d->hold_n) {
        push_tokens(d, d->hold_ids, d->hold_mask, d->hold_n, 0);
        pack_stream(d, 1);
        d->hold_n = 0;
    }
}

static void hold_tokens(SftData *d, const int32_t *ids, const uint8_t *mask, size_t n) {
    if (d->hold_n + n > d->hold_cap) {
        size_t cap = d->hold_cap ? d->hold_cap : 1024;
        while (cap < d->hold_n + n) cap *= 2;
        d->hold_ids = xrealloc(d->hold_ids, cap * sizeof *d->hold_ids);
        d->hold_mask = xrealloc(d->hold_mask, cap);
        d->hold_cap = cap;
    }
    memcpy(d->hold_ids + d->hold_n, ids, n * sizeof *ids);
    memcpy(d->hold_mask + d->hold_n, mask, n);
    d->hold_n += n;
}

Err sftdata_add_dialogue(SftData *d, const Tokenizer *t, const json_t *dialogue, const char *system,
                         ChatLoss loss, int held) {
    ChatTokens ct = {0};
    Err rc = chat_encode(t, dialogue, system && *system ? system : NULL, loss, &ct);
    if (rc != ERR_OK) return rc;
    size_t n = ct.n;
    if (d->pack) {
        int any = 0;
        for (size_t i = 1; i < n; i++) any |= ct.mask[i];
        if (!any) d->dropped++;
        else if (held) hold_tokens(d, ct.ids, ct.mask, n);
        else push_tokens(d, ct.ids, ct.mask, n, 0);
        chat_tokens_free(&ct);
        return ERR_OK;
    }
    if (n > (size_t)d->T + 1) {
        n = (size_t)d->T + 1;
        d->truncated++;
    }
    int targets = 0;
    for (size_t i = 1; i < n; i++) targets += ct.mask[i];
    if (targets == 0) {
        d->dropped++;
    } else {
        /* the packed-stream mark must not cover dialogue tokens */
        ASSERT(d->packed == d->n);
        int64_t off = (int64_t)d->n;
        push_tokens(d, ct.ids, ct.mask, n, 0);
        d->packed = d->n;
        push_item(d, off, (int32_t)n, held ? 1 : 0);
    }
    chat_tokens_free(&ct);
    return ERR_OK;
}

Err sftdata_add_record(SftData *d, const Tokenizer *t, const json_t *record) {
    if (!json_is_object(record)) return err_set(ERR_INPUT, "an sft_example must be a JSON object");
    const json_t *type = json_object_get(record, "type");
    if (type && (!json_is_string(type) || strcmp(json_string_value(type), "sft_example") != 0))
        return err_set(ERR_INPUT, "\"type\": expected \"sft_example\"");
    const json_t *dialogue = json_object_get(record, "dialogue");
    if (!dialogue) return err_set(ERR_INPUT, "\"dialogue\": missing");
    const json_t *sys = json_object_get(record, "system");
    if (sys && !json_is_string(sys) && !json_is_null(sys)) return err_set(ERR_INPUT, "\"system\": expected a string");
    const json_t *split = json_object_get(record, "split");
    if (split && !json_is_null(split) &&
        (!json_is_string(split) || (strcmp(json_string_value(split), "train") != 0 &&
                                    strcmp(json_string_value(split), "test") != 0)))
        return err_set(ERR_INPUT, "\"split\": expected \"train\" or \"test\"");
    ChatLoss loss;
    Err rc = chat_loss_parse(json_object_get(record, "loss_turns"), &loss);
    if (rc != ERR_OK) return err_prefix(rc, "\"loss_turns\": ");
    int held = split && json_is_string(split) && strcmp(json_string_value(split), "test") == 0;
    rc = sftdata_add_dialogue(d, t, dialogue, sys && json_is_string(sys) ? json_string_value(sys) : NULL,
                              loss, held);
    chat_loss_free(&loss);
    return rc;
}

/* ---- split and order --------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sftdata_split(SftData *d, double eval_fraction, uint64_t seed, bool shuffle) {
    free(d->train);
    free(d->eval);
    free(d->perm);
    d->train = xmalloc((d->n_items + 1) * sizeof *d->train);
    d->eval = xmalloc((d->n_items + 1) * sizeof *d->eval);
    d->perm = xmalloc((d->n_items + 1) * sizeof *d->perm);
    d->n_train = d->n_eval = 0;
    int any_held = 0;
    for (size_t i = 0; i < d->n_items; i++) any_held |= d->held[i];
    /* the top 53 bits of the hash as a fraction of 1 */
    for (size_t i = 0; i < d->n_items; i++) {
        int is_eval = any_held ? d->held[i]
                               : (double)(mix64(seed * 0x9e3779b97f4a7c15ULL + i + 1) >> 11) * 0x1p-53 < eval_fraction;
        if (is_eval) d->eval[d->n_eval++] = (int64_t)i;
        else d->train[d->n_train++] = (int64_t)i;
    }
    d->seed = seed;
    d->shuffle = shuffle;
    d->perm_epoch = -1;
}

static void draw_order(SftData *d, int64_t epoch) {
    memcpy(d->perm, d->train, d->n_train * sizeof *d->perm);
    if (d->shuffle && d->n_train > 1) {
        Rng base, r;
        rng_seed(&base, d->seed);
        r = rng_fork(&base, (uint64_t)epoch);
        for (size_t i = d->n_train - 1; i > 0; i--) { /* Fisher-Yates */
            size_t j = rng_below(&r, (uint32_t)(i + 1));
            int64_t tmp = d->perm[i];
            d->perm[i] = d->perm[j];
            d->perm[j] = tmp;
        }
    }
    d->perm_epoch = epoch;
}

/* Row r of the batch from item `item` (or all padding when item < 0). Returns its target count. */
static int64_t fill_row(const SftData *d, int64_t item, int r, int32_t *tokens, int32_t *targets, float *mask) {
    int T = d->T;
    int32_t *tk = tokens + (size_t)r * T, *tg = targets + (size_t)r * T;
    float *mk = mask + (size_t)r * T;
    int n = item >= 0 ? d->len[item] - 1 : 0;
    int64_t count = 0;
    const int32_t *ids = item >= 0 ? d->ids + d->off[item] : NULL;
    const uint8_t *m = item >= 0 ? d->mask + d->off[item] : NULL;
    for (int t = 0; t < n; t++) {
        tk[t] = ids[t];
        tg[t] = ids[t + 1];
        mk[t] = m[t + 1];
        count += m[t + 1];
    }
    for (int t = n; t < T; t++) {
        tk[t] = TOKENIZER_EOS; /* any valid id: padding is masked and cannot reach valid positions */
        tg[t] = TOKENIZER_EOS;
        mk[t] = 0.0f;
    }
    return count;
}

int64_t sftdata_next_batch(SftData *d, SftCursor *cur, int B, int32_t *tokens, int32_t *targets,
                           float *mask) {
    ASSERT(d->n_train > 0);
    int64_t count = 0;
    for (int r = 0; r < B; r++) {
        if (cur->pos >= (int64_t)d->n_train) {
            cur->epoch++;
            cur->pos = 0;
        }
        if (d->perm_epoch != cur->epoch) draw_order(d, cur->epoch);
        count += fill_row(d, d->perm[cur->pos], r, tokens, targets, mask);
        cur->pos++;
    }
    return count;
}

int64_t sftdata_eval_batch(const SftData *d, size_t first, int B, int32_t *tokens, int32_t *targets,
                           float *mask) {
    int64_t count = 0;
    for (int r = 0; r < B; r++) {
        size_t i = first + (size_t)r;
        count += fill_row(d, i < d->n_eval ? d->eval[i] : -1, r, tokens, targets, mask);
    }
    return count;
}

uint64_t sftdata_fingerprint(const SftData *d) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a over 32-bit words, then mixed */
#define FP_ADD(x)                                                                                  \
    do {                                                                                           \
        h ^= (uint64_t)(uint32_t)(x);                                                              \
        h *= 0x100000001b3ULL;                                                                     \
    } while (0)
    FP_ADD(d->T);
    for (size_t i = 0; i < d->n_items; i++) {
        FP_ADD(d->len[i]);
        FP_ADD(d->held[i]);
        const int32_t *ids = d->ids + d->off[i];
        const uint8_t *m = d->mask + d->off[i];
        for (int32_t t = 0; t < d->len[i]; t++) {
            FP_ADD(ids[t]);
            FP_ADD(m[t]);
        }
    }
#undef FP_ADD
    return mix64(h);
}

int64_t sftdata_train_targets(const SftData *d) {
    int64_t n = 0;
    for (size_t k = 0; k < d->n_train; k++) {
        int64_t i = d->train[k];
        for (int32_t t = 1; t < d->len[i]; t++) n += d->mask[d->off[i] + t];
    }
    return n;
}
