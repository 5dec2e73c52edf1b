/*
 * chat — see chat.h for the template, the tokenization and the loss mask.
 *
 * Everything is validated before anything is appended, so a failed call leaves `out` as it was.
 */
#include "chat.h"

#include <string.h>

#include "util.h"

static const char B_INST[] = "[INST] ", E_INST[] = " [/INST]";
static const char B_SYS[] = "<<SYS>>\n", E_SYS[] = "\n<</SYS>>\n\n";

typedef struct {
    const char *s;
    size_t n;
} Span;

/* A dialogue reduced to its texts: turn[0] user, turn[1] assistant, ... */
typedef struct {
    Span system; /* n == 0: none */
    Span *turn;
    size_t nturns;
} Dialogue;

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static Span strip(Span x) {
    while (x.n > 0 && is_space(x.s[0])) x.s++, x.n--;
    while (x.n > 0 && is_space(x.s[x.n - 1])) x.n--;
    return x;
}

static Err dialogue_read(const json_t *d, const char *system, Dialogue *out) {
    memset(out, 0, sizeof *out);
    if (!json_is_array(d)) return err_set(ERR_INPUT, "dialogue: expected a JSON array of {\"role\", \"content\"}");
    if (system) out->system = (Span){system, strlen(system)};
    out->turn = xmalloc((json_array_size(d) + 1) * sizeof *out->turn);
    for (size_t i = 0; i < json_array_size(d); i++) {
        const json_t *e = json_array_get(d, i);
        const json_t *role = json_object_get(e, "role"), *content = json_object_get(e, "content");
        Err rc = ERR_OK;
        if (!json_is_string(role) || !json_is_string(content)) {
            rc = err_set(ERR_INPUT, "dialogue[%zu]: expected {\"role\": string, \"content\": string}", i);
        } else {
            const char *r = json_string_value(role);
            Span text = {json_string_value(content), json_string_length(content)};
            const char *want = out->nturns % 2 == 0 ? "user" : "assistant";
            if (strcmp(r, "system") == 0) {
                if (i > 0) rc = err_set(ERR_INPUT, "dialogue[%zu]: a system turn can only come first", i);
                else if (system) rc = err_set(ERR_INPUT, "dialogue[0]: a system turn and a separate system prompt");
                else out->system = text;
            } else if (strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0) {
                rc = err_set(ERR_INPUT, "dialogue[%zu]: unknown role \"%s\" (user, assistant or system)", i, r);
            } else if (strcmp(r, want) != 0) {
                rc = err_set(ERR_INPUT, "dialogue[%zu]: role \"%s\" where \"%s\" was expected (turns alternate user, "
                             "assistant, starting with user)", i, r, want);
            } else {
                out->turn[out->nturns++] = text;
            }
        }
        if (rc != ERR_OK) {
            free(out->turn);
            out->turn = NULL;
            return rc;
        }
    }
    if (out->nturns == 0) {
        free(out->turn);
        out->turn = NULL;
        return err_set(ERR_INPUT, "dialogue: no user or assistant turn");
    }
    return ERR_OK;
}

/* "[INST] {user} [/INST]" for user turn k (even), the system block folded into the first. */
static void prompt_text(const Dialogue *d, size_t k, TextBuf *buf) {
    buf->len = 0;
    text_buf_append(buf, B_INST, sizeof B_INST - 1);
    TextBuf content = {0};
    if (k == 0 && d->system.n > 0) {
        text_buf_append(&content, B_SYS, sizeof B_SYS - 1);
        text_buf_append(&content, d->system.s, d->system.n);
        text_buf_append(&content, E_SYS, sizeof E_SYS - 1);
    }
    text_buf_append(&content, d->turn[k].s, d->turn[k].n);
    Span s = strip((Span){content.data, content.len});
    text_buf_append(buf, s.s, s.n);
    text_buf_append(buf, E_INST, sizeof E_INST - 1);
    text_buf_free(&content);
}

/* "{answer} " for assistant turn k (odd). */
static void answer_text(const Dialogue *d, size_t k, TextBuf *buf) {
    buf->len = 0;
    Span s = strip(d->turn[k]);
    text_buf_append(buf, s.s, s.n);
    text_buf_append(buf, " ", 1);
}

static void chat_push(ChatTokens *c, const TokenList *ids, uint8_t mask) {
    if (c->n + ids->n > c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        while (cap < c->n + ids->n) cap *= 2;
        c->ids = xrealloc(c->ids, cap * sizeof *c->ids);
        c->mask = xrealloc(c->mask, cap);
        c->cap = cap;
    }
    memcpy(c->ids + c->n, ids->ids, ids->n * sizeof *ids->ids);
    memset(c->mask + c->n, mask, ids->n);
    c->n += ids->n;
}

static Err check_loss(ChatLoss loss, size_t nanswers) {
    if (loss.kind != CHAT_LOSS_TURNS) return ERR_OK;
    if (loss.nturns == 0) return err_set(ERR_INPUT, "loss_turns: empty, so no answer would be learned");
    for (size_t i = 0; i < loss.nturns; i++)
        if (loss.turns[i] < 0 || (size_t)loss.turns[i] >= nanswers)
            return err_set(ERR_INPUT, "loss_turns: turn %d, but the dialogue has %zu assistant turns (0-based)",
                           loss.turns[i], nanswers);
    return ERR_OK;
}

static bool carries_loss(ChatLoss loss, size_t answer, size_t nanswers) {
    if (loss.kind == CHAT_LOSS_ALL) return true;
    if (loss.kind == CHAT_LOSS_LAST) return answer + 1 == nanswers;
    for (size_t i = 0; i < loss.nturns; i++)
        if ((size_t)loss.turns[i] == answer) return true;
    return false;
}

/* Append turns [0, nturns) of d: prompts unmasked, answers masked as the policy says. */
static void encode_turns(const Tokenizer *t, const Dialogue *d, size_t nturns, ChatLoss loss, ChatTokens *out) {
    TextBuf text = {0};
    TokenList ids = {0};
    size_t nanswers = d->nturns / 2;
    for (size_t k = 0; k < nturns; k++) {
        ids.n = 0;
        if (k % 2 == 0) {
            prompt_text(d, k, &text);
            tokenizer_encode(t, text.data, text.len, true, false, &ids);
            chat_push(out, &ids, 0);
        } else {
            answer_text(d, k, &text);
            tokenizer_encode(t, text.data, text.len, false, true, &ids);
            chat_push(out, &ids, carries_loss(loss, k / 2, nanswers) ? 1 : 0);
        }
    }
    text_buf_free(&text);
    token_list_free(&ids);
}

Err chat_encode(const Tokenizer *t, const json_t *dialogue, const char *system, ChatLoss loss, ChatTokens *out) {
    Dialogue d;
    Err rc = dialogue_read(dialogue, system, &d);
    if (rc != ERR_OK) return rc;
    if (d.nturns % 2 != 0)
        rc = err_set(ERR_INPUT, "dialogue[%zu]: ends with a user turn; a training example ends with the answer",
                     json_array_size(dialogue) - 1);
    if (rc == ERR_OK) rc = check_loss(loss, d.nturns / 2);
    if (rc == ERR_OK) encode_turns(t, &d, d.nturns, loss, out);
    free(d.turn);
    return rc;
}

Err chat_encode_prompt(const Tokenizer *t, const json_t *dialogue, const char *system, TokenList *out) {
    Dialogue d;
    Err rc = dialogue_read(dialogue, system, &d);
    if (rc != ERR_OK) return rc;
    if (d.nturns % 2 == 0) {
        free(d.turn);
        return err_set(ERR_INPUT, "dialogue[%zu]: ends with an assistant turn; a prompt ends with the user's message",
                       json_array_size(dialogue) - 1);
    }
    ChatTokens c = {0};
    encode_turns(t, &d, d.nturns, (ChatLoss){CHAT_LOSS_ALL, NULL, 0}, &c);
    for (size_t i = 0; i < c.n; i++) token_list_push(out, c.ids[i]);
    chat_tokens_free(&c);
    free(d.turn);
    return ERR_OK;
}

Err chat_loss_parse(const json_t *value, ChatLoss *out) {
    memset(out, 0, sizeof *out);
    out->kind = CHAT_LOSS_ALL;
    if (!value || json_is_null(value)) return ERR_OK;
    if (json_is_string(value) && strcmp(json_string_value(value), "all") == 0) return ERR_OK;
    if (json_is_string(value) && strcmp(json_string_value(value), "last") == 0) {
        out->kind = CHAT_LOSS_LAST;
        return ERR_OK;
    }
    if (json_is_array(value)) {
        size_t n = json_array_size(value);
        out->kind = CHAT_LOSS_TURNS;
        out->turns = xmalloc((n + 1) * sizeof *out->turns);
        for (size_t i = 0; i < n; i++) {
            const json_t *v = json_array_get(value, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
                chat_loss_free(out);
                return err_set(ERR_INPUT, "loss_turns[%zu]: expected a non-negative assistant-turn index", i);
            }
            out->turns[out->nturns++] = (int32_t)json_integer_value(v);
        }
        return ERR_OK;
    }
    return err_set(ERR_INPUT, "loss_turns: expected \"all\", \"last\" or an array of assistant-turn indices");
}

void chat_loss_free(ChatLoss *l) {
    free(l->turns);
    memset(l, 0, sizeof *l);
}

void chat_tokens_free(ChatTokens *c) {
    free(c->ids);
    free(c->mask);
    memset(c, 0, sizeof *c);
}
