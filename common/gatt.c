/*
 * gatt — Ghost Attention data synthesis and adherence checks; see gatt.h for the method and the
 * formats of the instruction lists.
 */
#include "gatt.h"

#include <ctype.h>
#include <string.h>

#include "util.h"

/* ---- small string helpers ------------------------------------------------------------------------ */

static char *strndup_x(const char *s, size_t n) {
    char *out = xmalloc(n + 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* s[0..n) without surrounding ASCII whitespace, as a new string. */
static char *trim_dup(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    return strndup_x(s, n);
}

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* tmpl with every "{key_i}" replaced by val_i (i < n); other braces are kept as written. */
static char *substitute(const char *tmpl, const char *const *keys, const char *const *vals, int n) {
    Buf b = {0};
    buf_add(&b, "", 0);
    for (const char *p = tmpl; *p;) {
        int hit = -1;
        size_t klen = 0;
        if (*p == '{')
            for (int i = 0; i < n && hit < 0; i++) {
                klen = strlen(keys[i]);
                if (strncmp(p + 1, keys[i], klen) == 0 && p[1 + klen] == '}') hit = i;
            }
        if (hit >= 0) {
            buf_add(&b, vals[hit], strlen(vals[hit]));
            p += klen + 2;
        } else {
            buf_add(&b, p, 1);
            p++;
        }
    }
    return b.data;
}

/* Is `word` one of the words of text (runs of ASCII letters or digits), without case? */
static bool has_word(const char *text, const char *word) {
    size_t wn = strlen(word);
    if (!wn) return false;
    for (const char *p = text; *p;) {
        if (!isalnum((unsigned char)*p)) {
            p++;
            continue;
        }
        const char *s = p;
        while (isalnum((unsigned char)*p)) p++;
        if ((size_t)(p - s) == wn && strncasecmp(s, word, wn) == 0) return true;
    }
    return false;
}

/* ---- instruction lists --------------------------------------------------------------------------- */

/* The placeholder of a template: *name = "hobby" for "Only speak about {hobby}.", NULL when there is
 * none. ERR_INPUT for two placeholders or an unclosed brace. */
static Err placeholder(const char *tmpl, char **name) {
    *name = NULL;
    const char *open = strchr(tmpl, '{');
    if (!open) return strchr(tmpl, '}') ? err_set(ERR_INPUT, "'}' without '{' in '%s'", tmpl) : ERR_OK;
    const char *close = strchr(open, '}');
    if (!close || close == open + 1) return err_set(ERR_INPUT, "malformed placeholder in '%s'", tmpl);
    if (strchr(close + 1, '{') || strchr(close + 1, '}'))
        return err_set(ERR_INPUT, "more than one placeholder in '%s'", tmpl);
    for (const char *p = open + 1; p < close; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') return err_set(ERR_INPUT, "malformed placeholder in '%s'", tmpl);
    *name = strndup_x(open + 1, (size_t)(close - open - 1));
    return ERR_OK;
}

static void slot_free(GattSlot *s) {
    free(s->name);
    for (size_t i = 0; i < s->n; i++) free(s->values[i]);
    free(s->values);
}

static void kind_free(GattKind *k) {
    free(k->name);
    free(k->full);
    free(k->terse);
    free(k->arg);
}

/* "hobby: music painting" */
static Err parse_slot(const char *line, GattSlot *s) {
    memset(s, 0, sizeof *s);
    const char *colon = strchr(line, ':');
    if (!colon) return err_set(ERR_INPUT, "expected 'slot: value value ...', got '%s'", line);
    s->name = trim_dup(line, (size_t)(colon - line));
    bool ok = *s->name != '\0';
    for (const char *p = s->name; *p && ok; p++) ok = isalnum((unsigned char)*p) || *p == '_';
    if (!ok) {
        free(s->name);
        return err_set(ERR_INPUT, "slot name must be letters, digits or '_', got '%.*s'", (int)(colon - line), line);
    }
    for (const char *p = colon + 1; *p;) {
        while (*p && isspace((unsigned char)*p)) p++;
        const char *w = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        if (p > w) {
            s->values = xrealloc(s->values, (s->n + 1) * sizeof *s->values);
            s->values[s->n++] = strndup_x(w, (size_t)(p - w));
        }
    }
    if (!s->n) {
        Err rc = err_set(ERR_INPUT, "slot '%s' has no values", s->name);
        slot_free(s);
        return rc;
    }
    return ERR_OK;
}

static int slot_find(const GattSlot *slots, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(slots[i].name, name) == 0) return (int)i;
    return -1;
}

/* "name | full | terse | check" */
static Err parse_kind(const char *line, const GattSlot *slots, size_t nslots, GattKind *k) {
    memset(k, 0, sizeof *k);
    k->slot = -1;
    char *f[4];
    int nf = 0;
    const char *p = line;
    for (;;) {
        const char *bar = strchr(p, '|');
        const char *end = bar ? bar : p + strlen(p);
        if (nf == 4) {
            for (int i = 0; i < nf; i++) free(f[i]);
            return err_set(ERR_INPUT, "expected 4 fields 'name | full | terse | check', got more in '%s'", line);
        }
        f[nf++] = trim_dup(p, (size_t)(end - p));
        if (!bar) break;
        p = bar + 1;
    }
    Err rc = ERR_OK;
    char *ph_full = NULL, *ph_terse = NULL;
    if (nf != 4) rc = err_set(ERR_INPUT, "expected 4 fields 'name | full | terse | check', got %d in '%s'", nf, line);
    for (int i = 0; !rc && i < 4; i++)
        if (!*f[i]) rc = err_set(ERR_INPUT, "field %d is empty in '%s'", i + 1, line);
    if (!rc) rc = placeholder(f[1], &ph_full);
    if (!rc) rc = placeholder(f[2], &ph_terse);
    if (!rc && (!ph_full) != (!ph_terse))
        rc = err_set(ERR_INPUT, "the full and terse forms of '%s' must hold the same placeholder", f[0]);
    if (!rc && ph_full && strcmp(ph_full, ph_terse) != 0)
        rc = err_set(ERR_INPUT, "the full and terse forms of '%s' use {%s} and {%s}", f[0], ph_full, ph_terse);
    if (!rc && ph_full && (k->slot = slot_find(slots, nslots, ph_full)) < 0)
        rc = err_set(ERR_INPUT, "unknown slot {%s} in '%s' (declare it under slots)", ph_full, f[0]);
    if (!rc) {
        const char *c = f[3];
        if (strncmp(c, "word", 4) == 0 && isspace((unsigned char)c[4])) {
            k->check = GATT_CHECK_WORD;
            k->arg = trim_dup(c + 4, strlen(c + 4));
            for (const char *q = k->arg; *q && !rc; q++)
                if (!isalnum((unsigned char)*q)) rc = err_set(ERR_INPUT, "check 'word %s': a word is letters and digits", k->arg);
        } else if (strncmp(c, "ends", 4) == 0 && isspace((unsigned char)c[4])) {
            k->check = GATT_CHECK_ENDS;
            k->arg = trim_dup(c + 4, strlen(c + 4));
        } else if (strcmp(c, "names") == 0) {
            k->check = GATT_CHECK_NAMES;
            if (k->slot < 0) rc = err_set(ERR_INPUT, "check 'names' of '%s' needs a {slot} in its forms", f[0]);
        } else {
            rc = err_set(ERR_INPUT, "unknown check '%s' (word W | ends S | names)", c);
        }
    }
    free(ph_full);
    free(ph_terse);
    if (rc) {
        for (int i = 0; i < nf; i++) free(f[i]);
        free(k->arg);
        memset(k, 0, sizeof *k);
        return rc;
    }
    k->name = f[0];
    k->full = f[1];
    k->terse = f[2];
    free(f[3]);
    return ERR_OK;
}

Err gatt_list_parse(GattList *l, const char *const *kinds, size_t nkinds, const char *const *slots, size_t nslots) {
    memset(l, 0, sizeof *l);
    if (!nkinds) return err_set(ERR_INPUT, "kinds: no instruction kinds");
    l->slots = xcalloc(nslots ? nslots : 1, sizeof *l->slots);
    l->kinds = xcalloc(nkinds, sizeof *l->kinds);
    Err rc = ERR_OK;
    for (size_t i = 0; !rc && i < nslots; i++) {
        if ((rc = parse_slot(slots[i], &l->slots[i]))) rc = err_prefix(rc, "slots[%zu]: ", i);
        else if (slot_find(l->slots, i, l->slots[i].name) >= 0) {
            rc = err_set(ERR_INPUT, "slots[%zu]: slot '%s' declared twice", i, l->slots[i].name);
            slot_free(&l->slots[i]);
        } else l->nslots++;
    }
    for (size_t i = 0; !rc && i < nkinds; i++) {
        if ((rc = parse_kind(kinds[i], l->slots, l->nslots, &l->kinds[i]))) rc = err_prefix(rc, "kinds[%zu]: ", i);
        else if (gatt_kind_find(l, l->kinds[i].name) >= 0) {
            rc = err_set(ERR_INPUT, "kinds[%zu]: kind '%s' declared twice", i, l->kinds[i].name);
            kind_free(&l->kinds[i]);
        } else l->nkinds++;
    }
    if (rc) gatt_list_free(l);
    return rc;
}

void gatt_list_free(GattList *l) {
    for (size_t i = 0; i < l->nkinds; i++) kind_free(&l->kinds[i]);
    for (size_t i = 0; i < l->nslots; i++) slot_free(&l->slots[i]);
    free(l->kinds);
    free(l->slots);
    memset(l, 0, sizeof *l);
}

int gatt_kind_find(const GattList *l, const char *name) {
    for (size_t i = 0; i < l->nkinds; i++)
        if (l->kinds[i].name && strcmp(l->kinds[i].name, name) == 0) return (int)i;
    return -1;
}

char *gatt_render(const GattList *l, int kind, const char *value, bool terse) {
    ASSERT(kind >= 0 && (size_t)kind < l->nkinds);
    const GattKind *k = &l->kinds[kind];
    const char *tmpl = terse ? k->terse : k->full;
    if (k->slot < 0) return xstrdup(tmpl);
    ASSERT(value);
    const char *key = l->slots[k->slot].name;
    return substitute(tmpl, &key, &value, 1);
}

void gatt_draw(const GattList *l, Rng *r, double terse_prob, GattInstr *out) {
    ASSERT(l->nkinds > 0);
    memset(out, 0, sizeof *out);
    out->kind = (int)rng_below(r, (uint32_t)l->nkinds);
    const GattKind *k = &l->kinds[out->kind];
    if (k->slot >= 0) {
        const GattSlot *s = &l->slots[k->slot];
        out->value = xstrdup(s->values[rng_below(r, (uint32_t)s->n)]);
    }
    /* Always draw, so that the stream does not depend on terse_prob being 0 or 1. */
    out->terse = rng_uniform_double(r) < terse_prob;
    out->text = gatt_render(l, out->kind, out->value, out->terse);
}

/* Does text (trimmed) match tmpl, whose placeholder (if any) stands for a non-empty word without
 * spaces? *value = the text in its place (new string) or NULL. */
static bool match_template(const char *tmpl, const char *text, char **value) {
    *value = NULL;
    const char *open = strchr(tmpl, '{');
    size_t tn = strlen(text);
    if (!open) return strcmp(tmpl, text) == 0;
    const char *close = strchr(open, '}');
    size_t pre = (size_t)(open - tmpl), post = strlen(close + 1);
    if (tn <= pre + post || strncmp(text, tmpl, pre) != 0 || strcmp(text + tn - post, close + 1) != 0) return false;
    for (size_t i = pre; i < tn - post; i++)
        if (isspace((unsigned char)text[i])) return false;
    *value = strndup_x(text + pre, tn - post - pre);
    return true;
}

bool gatt_match(const GattList *l, const char *text, GattInstr *out) {
    char *t = trim_dup(text, strlen(text));
    bool found = false;
    for (size_t i = 0; i < l->nkinds && !found; i++)
        for (int terse = 0; terse < 2 && !found; terse++) {
            char *value;
            if (match_template(terse ? l->kinds[i].terse : l->kinds[i].full, t, &value)) {
                *out = (GattInstr){.kind = (int)i, .value = value, .text = xstrdup(t), .terse = terse};
                found = true;
            }
        }
    free(t);
    return found;
}

void gatt_instr_free(GattInstr *in) {
    free(in->value);
    free(in->text);
    memset(in, 0, sizeof *in);
}

bool gatt_adheres(const GattList *l, const GattInstr *in, const char *response) {
    ASSERT(in->kind >= 0 && (size_t)in->kind < l->nkinds);
    const GattKind *k = &l->kinds[in->kind];
    switch (k->check) {
    case GATT_CHECK_WORD: return has_word(response, k->arg);
    case GATT_CHECK_ENDS: {
        size_t n = strlen(response), m = strlen(k->arg);
        while (n && isspace((unsigned char)response[n - 1])) n--;
        return n >= m && memcmp(response + n - m, k->arg, m) == 0;
    }
    case GATT_CHECK_NAMES: return in->value && has_word(response, in->value);
    }
    return false;
}

/* ---- synthesis ----------------------------------------------------------------------------------- */

char *gatt_attach(const char *tmpl, const char *instruction, const char *user) {
    static const char *const keys[] = {"instruction", "user"};
    const char *vals[] = {instruction, user};
    return substitute(tmpl, keys, vals, 2);
}

Err gatt_user_turns(const json_t *dialogue, const char ***users, size_t *n) {
    *users = NULL;
    *n = 0;
    if (!json_is_array(dialogue) || json_array_size(dialogue) == 0)
        return err_set(ERR_INPUT, "dialogue: expected a non-empty array of turns");
    size_t len = json_array_size(dialogue);
    const char **u = xmalloc((len + 1) / 2 * sizeof *u);
    size_t nu = 0;
    for (size_t i = 0; i < len; i++) {
        const json_t *turn = json_array_get(dialogue, i);
        const char *want = i % 2 ? "assistant" : "user";
        const json_t *role = json_object_get(turn, "role"), *content = json_object_get(turn, "content");
        Err rc = ERR_OK;
        if (!json_is_object(turn)) rc = err_set(ERR_INPUT, "dialogue[%zu]: expected an object", i);
        else if (!json_is_string(role) || strcmp(json_string_value(role), want) != 0)
            rc = err_set(ERR_INPUT, "dialogue[%zu]: expected role \"%s\"", i, want);
        else if (!json_is_string(content)) rc = err_set(ERR_INPUT, "dialogue[%zu]: \"content\": expected a string", i);
        else if (i % 2 == 0 && !*json_string_value(content)) rc = err_set(ERR_INPUT, "dialogue[%zu]: empty user turn", i);
        if (rc) {
            free(u);
            return rc;
        }
        if (i % 2 == 0) u[nu++] = json_string_value(content);
    }
    *users = u;
    *n = nu;
    return ERR_OK;
}

static json_t *turn(const char *role, const char *content) {
    json_t *t = json_pack("{s:s, s:s}", "role", role, "content", content);
    ASSERT(t);
    return t;
}

json_t *gatt_turn_dialogue(const char *const *users, const char *const *answers, size_t t, const char *tmpl,
                           const char *instruction) {
    json_t *d = json_array();
    for (size_t i = 0; i <= t; i++) {
        if (tmpl) {
            char *u = gatt_attach(tmpl, instruction, users[i]);
            json_array_append_new(d, turn("user", u));
            free(u);
        } else {
            json_array_append_new(d, turn("user", users[i]));
        }
        if (i < t) json_array_append_new(d, turn("assistant", answers[i]));
    }
    return d;
}

json_t *gatt_example(const GattList *l, const char *const *users, const char *const *answers, size_t n,
                     const GattInstr *in, int64_t iteration) {
    ASSERT(n >= 1 && in->kind >= 0 && (size_t)in->kind < l->nkinds);
    json_t *d = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(d, turn("user", users[i]));
        json_array_append_new(d, turn("assistant", answers[i]));
    }
    json_t *tags = json_pack("{s:s, s:s, s:s}", "risk", "none", "category", "system", "instruction",
                             l->kinds[in->kind].name);
    if (in->value) json_object_set_new(tags, "value", json_string(in->value));
    json_object_set_new(tags, "terse", json_boolean(in->terse));
    json_t *rec = json_pack("{s:s, s:o, s:s, s:[I], s:s, s:I, s:s, s:o}", "type", "sft_example", "dialogue", d,
                            "system", in->text, "loss_turns", (json_int_t)(n - 1), "source", "gatt", "iteration",
                            (json_int_t)iteration, "split", "train", "tags", tags);
    ASSERT(rec);
    return rec;
}
