/* gen — batched KV-cache generation; the slot scheme and the random streams are described in gen.h. */
#include "gen.h"

#include <string.h>

#include "rng.h"
#include "tokenizer.h"
#include "util.h"

typedef struct {
    int64_t seq;  /* i * K + j, or -1 when the slot is idle */
    int fed;      /* tokens fed so far = the position the next one goes to */
    int32_t next; /* the token to feed at the next step */
    Rng rng;
} Slot;

void gen_samples_free(GenSample *s, int64_t n) {
    if (!s) return;
    for (int64_t i = 0; i < n; i++) {
        free(s[i].ids);
        free(s[i].logp);
        free(s[i].logp_raw);
    }
    memset(s, 0, (size_t)n * sizeof *s);
}

char *gen_answer_text(const Tokenizer *tok, const GenSample *s) {
    int n = s->n > 0 && s->ids[s->n - 1] == TOKENIZER_EOS ? s->n - 1 : s->n;
    TextBuf b = {0};
    tokenizer_decode_utf8(tok, s->ids, (size_t)n, &b);
    const char *p = b.data ? b.data : "";
    size_t len = b.len;
    while (len && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++, len--;
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\n' || p[len - 1] == '\t' || p[len - 1] == '\r')) len--;
    char *out = xmalloc(len + 1);
    memcpy(out, p, len);
    out[len] = '\0';
    text_buf_free(&b);
    return out;
}

static Err check_inputs(const Model *m, const GenPrompt *prompts, int n_prompts, int k, const GenConfig *cfg) {
    if (m->cfg.head != HEAD_LM) return err_set(ERR_INPUT, "generation needs a language model (this one has a scalar head)");
    if (k < 1) return err_set(ERR_INPUT, "samples per prompt must be >= 1, not %d", k);
    if (cfg->max_new < 1) return err_set(ERR_INPUT, "max_new must be >= 1, not %d", cfg->max_new);
    if (cfg->batch < 1) return err_set(ERR_INPUT, "batch must be >= 1, not %d", cfg->batch);
    for (int i = 0; i < n_prompts; i++) {
        const GenPrompt *p = &prompts[i];
        if (p->n < 1) return err_set(ERR_INPUT, "prompt %llu: empty", (unsigned long long)p->index);
        if (p->n > m->cfg.max_seq_len)
            return err_set(ERR_INPUT, "prompt %llu: %d tokens, more than the model's context of %d",
                           (unsigned long long)p->index, p->n, m->cfg.max_seq_len);
        for (int t = 0; t < p->n; t++)
            if (p->ids[t] < 0 || p->ids[t] >= m->cfg.vocab_size)
                return err_set(ERR_INPUT, "prompt %llu: token %d is outside the vocabulary of %d",
                               (unsigned long long)p->index, p->ids[t], m->cfg.vocab_size);
    }
    return ERR_OK;
}

Err gen_run(Model *m, const GenPrompt *prompts, int n_prompts, int k, const GenConfig *cfg, GenSample *out,
            GenStats *stats) {
    Err rc = check_inputs(m, prompts, n_prompts, k, cfg);
    if (rc) return rc;
    Sampler sampler;
    if ((rc = sampler_create(&sampler, &cfg->sampler, m->cfg.vocab_size))) return rc;
    GenStats st = {0, 0, 0};
    int64_t total = (int64_t)n_prompts * k;
    int maxlen = 1;
    for (int i = 0; i < n_prompts; i++) maxlen = prompts[i].n > maxlen ? prompts[i].n : maxlen;
    /* the last new token is never fed, so a slot needs prompt + max_new - 1 positions */
    int64_t need = (int64_t)maxlen + cfg->max_new - 1;
    int T = need < m->cfg.max_seq_len ? (int)need : m->cfg.max_seq_len;
    int B = total < cfg->batch ? (int)total : cfg->batch;
    for (int64_t s = 0; s < total; s++) {
        out[s].ids = xmalloc((size_t)cfg->max_new * sizeof *out[s].ids);
        out[s].logp = xmalloc((size_t)cfg->max_new * sizeof *out[s].logp);
        out[s].logp_raw = xmalloc((size_t)cfg->max_new * sizeof *out[s].logp_raw);
        out[s].n = 0;
        out[s].stop = GEN_STOP_LENGTH;
    }
    if (total == 0) {
        sampler_free(&sampler);
        if (stats) *stats = st;
        return ERR_OK;
    }
    Decoder d;
    decoder_create(&d, m, B, T);
    Slot *slots = xmalloc((size_t)B * sizeof *slots);
    int32_t *tokens = xmalloc((size_t)B * sizeof *tokens), *pos = xmalloc((size_t)B * sizeof *pos);
    Rng base;
    rng_seed(&base, cfg->seed);
    int64_t queued = 0;
    size_t V = (size_t)m->cfg.vocab_size;
    for (int b = 0; b < B; b++) slots[b].seq = -1;

    for (;;) {
        /* fill idle slots from the queue; decode only up to the last busy slot */
        int hi = 0;
        for (int b = 0; b < B; b++) {
            Slot *s = &slots[b];
            if (s->seq < 0 && queued < total) {
                const GenPrompt *p = &prompts[queued / k];
                Rng per_prompt = rng_fork(&base, p->index);
                s->seq = queued;
                s->fed = 0;
                s->next = p->ids[0];
                s->rng = rng_fork(&per_prompt, (uint64_t)(queued % k));
                queued++;
            }
            if (s->seq >= 0) {
                tokens[b] = s->next;
                pos[b] = s->fed;
                hi = b + 1;
            } else {
                tokens[b] = TOKENIZER_EOS; /* an idle slot below a busy one: harmless work at position 0 */
                pos[b] = 0;
            }
        }
        if (hi == 0) break;
        const float *logits = model_decode_step(m, &d, tokens, pos, hi);
        st.steps++;
        for (int b = 0; b < hi; b++) {
            Slot *s = &slots[b];
            if (s->seq < 0) continue;
            st.fed++;
            const GenPrompt *p = &prompts[s->seq / k];
            s->fed++;
            if (s->fed < p->n) { /* still reading the prompt */
                s->next = p->ids[s->fed];
                continue;
            }
            GenSample *o = &out[s->seq];
            float lp, lpr;
            int32_t id = sampler_sample(&sampler, logits + (size_t)b * V, &s->rng, &lp, &lpr);
            if (id < 0) {
                rc = err_set(ERR_RUNTIME, "prompt %llu sample %lld: the model's logits are not finite",
                             (unsigned long long)p->index, (long long)(s->seq % k));
                goto done;
            }
            o->ids[o->n] = id;
            o->logp[o->n] = lp;
            o->logp_raw[o->n] = lpr;
            o->n++;
            st.generated++;
            if (id == TOKENIZER_EOS) o->stop = GEN_STOP_EOS;
            if (id == TOKENIZER_EOS || o->n == cfg->max_new || s->fed >= T) s->seq = -1; /* done: free the slot */
            else s->next = id;
        }
    }
done:
    decoder_free(&d);
    free(slots);
    free(tokens);
    free(pos);
    sampler_free(&sampler);
    if (rc) gen_samples_free(out, total);
    if (stats) *stats = st;
    return rc;
}
