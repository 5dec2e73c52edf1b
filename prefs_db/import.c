/*
 * prefs_db import — JSONL lines into the store, all or nothing.
 *
 * Formats (one JSON object per line):
 *   jsonl    our interchange records, "type" = prompt | response | comparison | sft_example, as
 *            `prefs_db export` writes them (docs/store.md). Unknown fields are errors, so a typo
 *            in a field name does not silently drop data.
 *   hh-rlhf  Anthropic's {"chosen": transcript, "rejected": transcript}; a transcript is
 *            "\n\nHuman: …\n\nAssistant: …" repeated. Both must be the same dialogue up to the
 *            last assistant turn, which holds the two answers; rows where they differ, that do not
 *            end with an answer, or whose answers are identical are reported and skipped.
 *   pku      PKU-SafeRLHF rows {prompt, response_0, response_1, better_response_id,
 *            safer_response_id, is_response_0_safe, is_response_1_safe}: one helpfulness and one
 *            safety comparison with the safety labels of both responses. Other fields are ignored.
 * What the format does not say comes from the flags: --dimension (required for hh-rlhf), --split,
 * --rating (default 0 = "negligibly better / unsure", the honest reading of a binary choice),
 * --annotator, --model (the producing model of responses created here), --iteration, --source.
 *
 * Atomicity: the whole input is one transaction and each line a savepoint inside it. A bad line
 * (malformed JSON, missing field, wrong type, unknown value, invalid UTF-8, dangling id) rolls the
 * whole import back and fails with "file:line: what"; with --skip-bad only that line is undone
 * and counted.
 */
#include <math.h>
#include <string.h>

#include "prefs_db.h"
#include "util.h"

/* ---- field access: each failure names the field ------------------------------------------------ */

static Err no_unknown_fields(const json_t *o, const char *const *known) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        int ok = 0;
        for (const char *const *k = known; *k && !ok; k++) ok = strcmp(*k, key) == 0;
        if (!ok) return err_set(ERR_INPUT, "unknown field \"%s\"", key);
    }
    return ERR_OK;
}

/* *out = the string field, or NULL when absent (an error if required) or JSON null. */
static Err get_str(const json_t *o, const char *key, int required, const char **out) {
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v)) return required ? err_set(ERR_INPUT, "missing field \"%s\"", key) : ERR_OK;
    if (!json_is_string(v)) return err_set(ERR_INPUT, "field \"%s\" must be a string", key);
    *out = json_string_value(v);
    return ERR_OK;
}

/* *out = the integer field, or dflt when absent or null (an error if required). */
static Err get_int(const json_t *o, const char *key, int required, int64_t dflt, int64_t *out) {
    json_t *v = json_object_get(o, key);
    *out = dflt;
    if (!v || json_is_null(v)) return required ? err_set(ERR_INPUT, "missing field \"%s\"", key) : ERR_OK;
    if (!json_is_integer(v)) return err_set(ERR_INPUT, "field \"%s\" must be an integer", key);
    *out = json_integer_value(v);
    return ERR_OK;
}

/* Safety label: true/false, or STORE_SAFE_UNKNOWN when absent or null. */
static Err get_safe(const json_t *o, const char *key, int *out) {
    json_t *v = json_object_get(o, key);
    *out = STORE_SAFE_UNKNOWN;
    if (!v || json_is_null(v)) return ERR_OK;
    if (!json_is_boolean(v)) return err_set(ERR_INPUT, "field \"%s\" must be true or false", key);
    *out = json_is_true(v);
    return ERR_OK;
}

/* A number field (integers accepted); NAN when absent or null. */
static Err get_real(const json_t *o, const char *key, double *out) {
    json_t *v = json_object_get(o, key);
    *out = NAN;
    if (!v || json_is_null(v)) return ERR_OK;
    if (!json_is_number(v)) return err_set(ERR_INPUT, "field \"%s\" must be a number", key);
    *out = json_number_value(v);
    return ERR_OK;
}

/* Compact JSON text of field key (an array or object), or NULL when absent; free it. */
static Err get_json_text(const json_t *o, const char *key, int required, char **out) {
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v)) return required ? err_set(ERR_INPUT, "missing field \"%s\"", key) : ERR_OK;
    if (!json_is_array(v) && !json_is_object(v))
        return err_set(ERR_INPUT, "field \"%s\" must be an array or object", key);
    *out = json_dumps(v, JSON_COMPACT);
    return ERR_OK;
}

static const char *or_default(const char *v, const char *dflt) { return v ? v : dflt; }

/* ---- interchange records ------------------------------------------------------------------------ */

/* Put the Prompt object o (top-level fields of a prompt record, or a "prompt" field). */
static Err put_prompt(Importer *im, const json_t *o, const char *const *known, int64_t *id) {
    const char *system, *split, *source;
    char *dialogue = NULL, *tags = NULL;
    int64_t ignored_id;
    int created = 0;
    Err e;
    if (!json_is_object(o)) return err_set(ERR_INPUT, "field \"prompt\" must be an object");
    if ((e = no_unknown_fields(o, known)) != ERR_OK || (e = get_str(o, "system", 0, &system)) != ERR_OK ||
        (e = get_str(o, "split", 0, &split)) != ERR_OK || (e = get_str(o, "source", 0, &source)) != ERR_OK ||
        /* "id" is where the prompt lives in the store it came from: not ours to reuse */
        (e = get_int(o, "id", 0, 0, &ignored_id)) != ERR_OK ||
        (e = get_json_text(o, "dialogue", 1, &dialogue)) != ERR_OK ||
        (e = get_json_text(o, "tags", 0, &tags)) != ERR_OK)
        goto out;
    StorePrompt p = {.dialogue = dialogue, .system = system, .tags = tags,
                     .split = or_default(split, im->opt->split),
                     .source = or_default(source, im->opt->source)};
    e = store_prompt_put(im->db, &p, id, &created);
    im->prompts_new += created;
out:
    free(dialogue);
    free(tags);
    return e;
}

static const char *const PROMPT_FIELDS[] = {"dialogue", "system", "tags", "split", "source", "id", NULL};
static const char *const PROMPT_RECORD_FIELDS[] = {"type", "dialogue", "system", "tags", "split",
                                                   "source", "id", NULL};

static Err record_prompt(Importer *im, const json_t *rec) {
    int64_t id;
    return put_prompt(im, rec, PROMPT_RECORD_FIELDS, &id);
}

static Err record_response(Importer *im, const json_t *rec) {
    static const char *const known[] = {"type", "id", "prompt", "text", "model", "iteration",
                                        "temperature", "top_p", "created_at", NULL};
    StoreResponse r;
    int64_t ignored, id;
    Err e;
    if ((e = no_unknown_fields(rec, known)) != ERR_OK || (e = get_int(rec, "id", 0, 0, &ignored)) != ERR_OK ||
        (e = get_str(rec, "text", 1, &r.text)) != ERR_OK || (e = get_str(rec, "model", 1, &r.model)) != ERR_OK ||
        (e = get_int(rec, "iteration", 1, 0, &r.iteration)) != ERR_OK ||
        (e = get_real(rec, "temperature", &r.temperature)) != ERR_OK ||
        (e = get_real(rec, "top_p", &r.top_p)) != ERR_OK ||
        (e = get_str(rec, "created_at", 0, &r.created_at)) != ERR_OK)
        return e;
    json_t *prompt = json_object_get(rec, "prompt");
    if (!prompt) return err_set(ERR_INPUT, "missing field \"prompt\"");
    if ((e = put_prompt(im, prompt, PROMPT_FIELDS, &r.prompt_id)) != ERR_OK) return e;
    if ((e = store_response_add(im->db, &r, &id)) != ERR_OK) return e;
    im->responses++;
    return ERR_OK;
}

/* The id of the response to prompt_id with this text by model, created if there is none. */
static Err response_for_text(Importer *im, int64_t prompt_id, const char *text, const char *model,
                             int64_t iteration, const char *created_at, int64_t *id) {
    Err e = store_response_find(im->db, prompt_id, text, model, id);
    if (e != ERR_OK || *id) return e;
    StoreResponse r = {.prompt_id = prompt_id, .text = text,
                       .model = or_default(model, or_default(im->opt->model, "unknown")),
                       .iteration = iteration, .temperature = NAN, .top_p = NAN, .created_at = created_at};
    if ((e = store_response_add(im->db, &r, id)) == ERR_OK) im->responses++;
    return e;
}

static Err record_comparison(Importer *im, const json_t *rec) {
    static const char *const known[] = {
        "type", "id", "prompt", "chosen", "rejected", "dimension", "rating", "chosen_safe",
        "rejected_safe", "annotator", "iteration", "split", "chosen_id", "rejected_id",
        "chosen_model", "rejected_model", "created_at", NULL};
    StoreComparison c = {0};
    const char *chosen, *rejected, *chosen_model, *rejected_model;
    int64_t ignored, rating, id;
    Err e;
    if ((e = no_unknown_fields(rec, known)) != ERR_OK || (e = get_int(rec, "id", 0, 0, &ignored)) != ERR_OK ||
        (e = get_str(rec, "dimension", 0, &c.dimension)) != ERR_OK ||
        (e = get_int(rec, "rating", 1, 0, &rating)) != ERR_OK ||
        (e = get_safe(rec, "chosen_safe", &c.chosen_safe)) != ERR_OK ||
        (e = get_safe(rec, "rejected_safe", &c.rejected_safe)) != ERR_OK ||
        (e = get_str(rec, "annotator", 0, &c.annotator)) != ERR_OK ||
        (e = get_int(rec, "iteration", 0, im->opt->iteration < 0 ? 0 : im->opt->iteration,
                     &c.iteration)) != ERR_OK ||
        (e = get_str(rec, "split", 0, &c.split)) != ERR_OK ||
        (e = get_int(rec, "chosen_id", 0, 0, &c.chosen_id)) != ERR_OK ||
        (e = get_int(rec, "rejected_id", 0, 0, &c.rejected_id)) != ERR_OK ||
        (e = get_str(rec, "chosen", 0, &chosen)) != ERR_OK ||
        (e = get_str(rec, "rejected", 0, &rejected)) != ERR_OK ||
        (e = get_str(rec, "chosen_model", 0, &chosen_model)) != ERR_OK ||
        (e = get_str(rec, "rejected_model", 0, &rejected_model)) != ERR_OK ||
        (e = get_str(rec, "created_at", 0, &c.created_at)) != ERR_OK)
        return e;
    if (rating < 0 || rating > 3)
        return err_set(ERR_INPUT, "field \"rating\" must be 0, 1, 2 or 3, not %lld", (long long)rating);
    c.rating = (int)rating;
    c.dimension = or_default(c.dimension, im->opt->dimension);
    if (!c.dimension) return err_set(ERR_INPUT, "missing field \"dimension\" (or give --dimension)");
    c.annotator = or_default(c.annotator, im->opt->annotator);
    if (!c.annotator) return err_set(ERR_INPUT, "missing field \"annotator\" (or give --annotator)");
    c.split = or_default(c.split, im->opt->split);
    if (!c.chosen_id != !c.rejected_id)
        return err_set(ERR_INPUT, "give both \"chosen_id\" and \"rejected_id\" or neither");
    if (!c.chosen_id) {
        /* Inline text: the prompt and the responses are created as needed. With ids, the ids
         * win and the store checks that they exist and answer one prompt. */
        json_t *prompt = json_object_get(rec, "prompt");
        if (!prompt) return err_set(ERR_INPUT, "missing field \"prompt\"");
        if (!chosen) return err_set(ERR_INPUT, "missing field \"chosen\"");
        if (!rejected) return err_set(ERR_INPUT, "missing field \"rejected\"");
        if ((e = put_prompt(im, prompt, PROMPT_FIELDS, &c.prompt_id)) != ERR_OK ||
            (e = response_for_text(im, c.prompt_id, chosen, chosen_model, c.iteration, c.created_at,
                                   &c.chosen_id)) != ERR_OK ||
            (e = response_for_text(im, c.prompt_id, rejected, rejected_model, c.iteration,
                                   c.created_at, &c.rejected_id)) != ERR_OK)
            return e;
    }
    if ((e = store_comparison_add(im->db, &c, &id)) != ERR_OK) return e;
    im->comparisons++;
    return ERR_OK;
}

static Err record_sft(Importer *im, const json_t *rec) {
    static const char *const known[] = {"type", "id", "dialogue", "system", "loss_turns", "source",
                                        "iteration", "tags", "split", "created_at", NULL};
    StoreSftExample x = {0};
    char *dialogue = NULL, *tags = NULL, *loss_json = NULL;
    int64_t ignored, id;
    Err e;
    json_t *loss = json_object_get(rec, "loss_turns");
    if ((e = no_unknown_fields(rec, known)) != ERR_OK || (e = get_int(rec, "id", 0, 0, &ignored)) != ERR_OK ||
        (e = get_str(rec, "system", 0, &x.system)) != ERR_OK ||
        (e = get_str(rec, "source", 1, &x.source)) != ERR_OK ||
        (e = get_int(rec, "iteration", 1, 0, &x.iteration)) != ERR_OK ||
        (e = get_str(rec, "split", 0, &x.split)) != ERR_OK ||
        (e = get_str(rec, "created_at", 0, &x.created_at)) != ERR_OK ||
        (e = get_json_text(rec, "dialogue", 1, &dialogue)) != ERR_OK ||
        (e = get_json_text(rec, "tags", 0, &tags)) != ERR_OK)
        goto out;
    if (!loss) {
        e = err_set(ERR_INPUT, "missing field \"loss_turns\"");
        goto out;
    } else if (json_is_string(loss)) {
        x.loss_turns = json_string_value(loss);
    } else if (json_is_array(loss)) {
        x.loss_turns = loss_json = json_dumps(loss, JSON_COMPACT);
    } else {
        e = err_set(ERR_INPUT, "field \"loss_turns\" must be \"all\", \"last\" or an array");
        goto out;
    }
    x.dialogue = dialogue;
    x.tags = tags;
    x.split = or_default(x.split, im->opt->split);
    if ((e = store_sft_add(im->db, &x, &id)) == ERR_OK) im->sft_examples++;
out:
    free(dialogue);
    free(tags);
    free(loss_json);
    return e;
}

static Err record_interchange(Importer *im, const json_t *rec) {
    const char *type;
    Err e = get_str(rec, "type", im->default_type == NULL, &type);
    if (e != ERR_OK) return e;
    type = or_default(type, im->default_type);
    if (strcmp(type, "prompt") == 0) return record_prompt(im, rec);
    if (strcmp(type, "response") == 0) return record_response(im, rec);
    if (strcmp(type, "comparison") == 0) return record_comparison(im, rec);
    if (strcmp(type, "sft_example") == 0) return record_sft(im, rec);
    if (strcmp(type, "score") == 0 || strcmp(type, "run") == 0 || strcmp(type, "metric") == 0)
        return err_set(ERR_INPUT, "\"%s\" records are export-only (their ids belong to another store)", type);
    return err_set(ERR_INPUT, "unknown record type \"%s\"", type);
}

/* ---- hh-rlhf -------------------------------------------------------------------------------------- */

/* Append turn (role, text[0..n)) to turns; a second turn of the same role in a row is joined to
 * the first with a blank line (a few hh-rlhf transcripts have "Assistant:" twice in a row, which
 * the chat template cannot represent) and *merged is set. */
static void hh_append(json_t *turns, const char *role, const char *text, size_t n, int *merged) {
    size_t k = json_array_size(turns);
    json_t *last = k ? json_array_get(turns, k - 1) : NULL;
    if (last && strcmp(json_string_value(json_object_get(last, "role")), role) == 0) {
        const char *prev = json_string_value(json_object_get(last, "content"));
        size_t m = strlen(prev);
        char *joined = xmalloc(m + 2 + n + 1);
        memcpy(joined, prev, m);
        memcpy(joined + m, "\n\n", 2);
        memcpy(joined + m + 2, text, n);
        joined[m + 2 + n] = 0;
        json_object_set_new(last, "content", json_string(joined));
        free(joined);
        *merged = 1;
        return;
    }
    json_array_append_new(turns, json_pack("{s:s, s:s%}", "role", role, "content", text, n));
}

/* Split a transcript "\n\nHuman: a\n\nAssistant: b..." into a JSON array of turns. NULL if it does
 * not start with a turn marker. */
static json_t *hh_turns(const char *t, int *merged) {
    static const struct {
        const char *marker, *role;
    } M[] = {{"\n\nHuman:", "user"}, {"\n\nAssistant:", "assistant"}};
    json_t *turns = json_array();
    const char *role = NULL, *start = NULL;
    for (const char *p = t;; p++) {
        int which = -1;
        if (*p == '\n')
            for (int k = 0; k < 2 && which < 0; k++)
                if (strncmp(p, M[k].marker, strlen(M[k].marker)) == 0) which = k;
        if (*p == 0 || which >= 0) {
            if (!role && p != t) break; /* text before the first marker */
            if (role) hh_append(turns, role, start, (size_t)(p - start), merged);
            if (*p == 0) return turns;
            role = M[which].role;
            p += strlen(M[which].marker);
            if (*p == ' ') p++; /* "Human: text" */
            start = p;
            p--;
        }
    }
    json_decref(turns);
    return NULL;
}

/* Prompt + final answer of one transcript whose turns alternate from the user to a final
 * assistant answer; *answer borrows from the array (keep turns alive). 0 if it is not that. */
static int hh_split(json_t *turns, json_t **prompt, const char **answer) {
    size_t n = json_array_size(turns);
    if (n < 2 || n % 2) return 0;
    for (size_t i = 0; i < n; i++) {
        const char *role = json_string_value(json_object_get(json_array_get(turns, i), "role"));
        if (strcmp(role, i % 2 ? "assistant" : "user") != 0) return 0;
    }
    json_t *last = json_array_get(turns, n - 1);
    *answer = json_string_value(json_object_get(last, "content"));
    *prompt = json_array();
    for (size_t i = 0; i + 1 < n; i++) json_array_append(*prompt, json_array_get(turns, i));
    return 1;
}

/* One comparison from a shared prompt dialogue and two answer texts. */
static Err add_pair(Importer *im, const json_t *dialogue, const char *system, const char *dimension,
                    const char *chosen, const char *rejected, int chosen_safe, int rejected_safe) {
    char *text = json_dumps(dialogue, JSON_COMPACT);
    StorePrompt p = {.dialogue = text, .system = system, .split = im->opt->split, .source = im->opt->source};
    StoreComparison c = {.dimension = dimension, .rating = im->opt->rating, .chosen_safe = chosen_safe,
                         .rejected_safe = rejected_safe, .annotator = im->opt->annotator,
                         .iteration = im->opt->iteration < 0 ? 0 : im->opt->iteration,
                         .split = im->opt->split};
    int created = 0;
    int64_t id;
    Err e;
    if ((e = store_prompt_put(im->db, &p, &c.prompt_id, &created)) == ERR_OK &&
        (e = response_for_text(im, c.prompt_id, chosen, NULL, c.iteration, NULL, &c.chosen_id)) == ERR_OK &&
        (e = response_for_text(im, c.prompt_id, rejected, NULL, c.iteration, NULL, &c.rejected_id)) == ERR_OK &&
        (e = store_comparison_add(im->db, &c, &id)) == ERR_OK)
        im->comparisons++;
    im->prompts_new += created;
    free(text);
    return e;
}

/* *skip is set (and ERR_OK returned) for a well-formed row that gives no comparison. */
static Err record_hh(Importer *im, const json_t *rec, int *skip) {
    const char *chosen, *rejected;
    Err e;
    if ((e = get_str(rec, "chosen", 1, &chosen)) != ERR_OK || (e = get_str(rec, "rejected", 1, &rejected)) != ERR_OK)
        return e;
    int merged = 0;
    json_t *tc = hh_turns(chosen, &merged), *tr = hh_turns(rejected, &merged);
    json_t *pc = NULL, *pr = NULL;
    const char *ac, *ar;
    if (!tc || !tr) {
        e = err_set(ERR_INPUT, "transcripts must start with \"\\n\\nHuman:\"");
    } else if (!hh_split(tc, &pc, &ac) || !hh_split(tr, &pr, &ar)) {
        *skip = SKIP_NOT_A_DIALOGUE;
    } else if (!json_equal(pc, pr)) {
        *skip = SKIP_PREFIX_DIFFERS;
    } else if (strcmp(ac, ar) == 0) {
        *skip = SKIP_IDENTICAL;
    } else {
        /* harmless-base: the chosen answer is the less harmful one, but neither is labelled safe */
        e = add_pair(im, pc, NULL, im->opt->dimension, ac, ar, STORE_SAFE_UNKNOWN, STORE_SAFE_UNKNOWN);
        im->merged += merged && e == ERR_OK;
    }
    json_decref(tc);
    json_decref(tr);
    json_decref(pc);
    json_decref(pr);
    return e;
}

/* ---- PKU-SafeRLHF ------------------------------------------------------------------------------- */

static Err get_choice(const json_t *rec, const char *key, int *out) {
    int64_t v;
    Err e = get_int(rec, key, 1, 0, &v);
    if (e != ERR_OK) return e;
    if (v != 0 && v != 1) return err_set(ERR_INPUT, "field \"%s\" must be 0 or 1", key);
    *out = (int)v;
    return ERR_OK;
}

static Err get_label(const json_t *rec, const char *key, int *out) {
    json_t *v = json_object_get(rec, key);
    if (!v) return err_set(ERR_INPUT, "missing field \"%s\"", key);
    return get_safe(rec, key, out);
}

static Err record_pku(Importer *im, const json_t *rec, int *skip) {
    const char *prompt, *resp[2];
    int better = 0, safer = 0, safe[2];
    Err e;
    if ((e = get_str(rec, "prompt", 1, &prompt)) != ERR_OK ||
        (e = get_str(rec, "response_0", 1, &resp[0])) != ERR_OK ||
        (e = get_str(rec, "response_1", 1, &resp[1])) != ERR_OK ||
        (e = get_choice(rec, "better_response_id", &better)) != ERR_OK ||
        (e = get_choice(rec, "safer_response_id", &safer)) != ERR_OK ||
        (e = get_label(rec, "is_response_0_safe", &safe[0])) != ERR_OK ||
        (e = get_label(rec, "is_response_1_safe", &safe[1])) != ERR_OK)
        return e;
    if (strcmp(resp[0], resp[1]) == 0) {
        *skip = SKIP_IDENTICAL;
        return ERR_OK;
    }
    json_t *dialogue = json_pack("[{ssss}]", "role", "user", "content", prompt);
    e = add_pair(im, dialogue, NULL, "helpfulness", resp[better], resp[1 - better], safe[better],
                 safe[1 - better]);
    if (e == ERR_OK)
        e = add_pair(im, dialogue, NULL, "safety", resp[safer], resp[1 - safer], safe[safer], safe[1 - safer]);
    json_decref(dialogue);
    return e;
}

/* ---- the loop ------------------------------------------------------------------------------------ */

const char *import_skip_reason(SkipReason why) {
    switch (why) {
    case SKIP_PREFIX_DIFFERS: return "chosen and rejected differ before the last answer";
    case SKIP_NOT_A_DIALOGUE: return "not a user/assistant dialogue ending with an answer";
    case SKIP_IDENTICAL: return "both answers are the same text";
    default: return "?";
    }
}

static Err import_line(Importer *im, const json_t *rec, int *skip) {
    if (!json_is_object(rec)) return err_set(ERR_INPUT, "a line must be a JSON object");
    const char *fmt = im->opt->format;
    if (strcmp(fmt, "hh-rlhf") == 0) return record_hh(im, rec, skip);
    if (strcmp(fmt, "pku") == 0) return record_pku(im, rec, skip);
    return record_interchange(im, rec);
}

/* The whole input is read and parsed before the write transaction begins: an import at the end of a
 * pipe must not hold the database's write lock while it waits for its input, because the programs
 * upstream (rejection_sample --emit jsonl, generate --emit store) write to the same store. */
typedef struct {
    json_t *rec;
    int64_t line;
} PendingLine;

Err import_stream(Importer *im, JsonlReader *r) {
    PendingLine *pending = NULL;
    size_t n = 0, cap = 0;
    Err e = ERR_OK;
    for (;;) {
        json_t *rec;
        int64_t line = 0;
        e = jsonl_next(r, &rec, &line);
        if (e == ERR_OK && !rec) break; /* end of input */
        if (e == ERR_RUNTIME) goto done;
        im->lines++;
        if (e != ERR_OK) { /* malformed JSON: its message already says file:line */
            if (!im->opt->skip_bad) goto done;
            im->bad_lines++;
            fprintf(stderr, "prefs_db: %s (skipped)\n", err_msg());
            continue;
        }
        if (n == cap) pending = xrealloc(pending, (cap = cap ? 2 * cap : 256) * sizeof *pending);
        pending[n].rec = rec;
        pending[n++].line = line;
    }
    if ((e = store_begin(im->db)) != ERR_OK) goto done;
    for (size_t i = 0; i < n; i++) {
        int skip = -1;
        if ((e = store_begin(im->db)) != ERR_OK) goto fail;
        e = import_line(im, pending[i].rec, &skip);
        if (e == ERR_OK) {
            if ((e = store_commit(im->db)) != ERR_OK) goto fail;
            if (skip >= 0) {
                im->skipped[skip]++;
                fprintf(stderr, "prefs_db: %s:%lld: skipped: %s\n", jsonl_name(r), (long long)pending[i].line,
                        import_skip_reason((SkipReason)skip));
            }
            continue;
        }
        store_rollback(im->db);
        if (e == ERR_RUNTIME) goto fail;
        err_prefix(e, "%s:%lld: ", jsonl_name(r), (long long)pending[i].line);
        if (!im->opt->skip_bad) goto fail;
        im->bad_lines++;
        fprintf(stderr, "prefs_db: %s (skipped)\n", err_msg());
    }
    e = store_commit(im->db);
    goto done;
fail:
    store_rollback(im->db);
done:
    for (size_t i = 0; i < n; i++) json_decref(pending[i].rec);
    free(pending);
    return e;
}

Err cmd_import(const Options *opt, const char *path) {
    Store *db;
    JsonlReader *r;
    Err e;
    if ((e = jsonl_open(&r, path)) != ERR_OK) return e;
    if ((e = store_open(&db, opt->db_path)) != ERR_OK) {
        jsonl_close(r);
        return e;
    }
    Importer im = {.db = db, .opt = opt};
    e = import_stream(&im, r);
    store_close(db);
    if (e != ERR_OK) {
        jsonl_close(r);
        return e;
    }
    int64_t skipped = 0;
    for (int k = 0; k < SKIP_N; k++) skipped += im.skipped[k];
    fprintf(stderr,
            "prefs_db: %s: %lld lines: %lld new prompts, %lld responses, %lld comparisons, "
            "%lld sft examples; %lld skipped, %lld bad\n",
            jsonl_name(r), (long long)im.lines, (long long)im.prompts_new,
            (long long)im.responses, (long long)im.comparisons, (long long)im.sft_examples,
            (long long)skipped, (long long)im.bad_lines);
    if (im.merged)
        fprintf(stderr, "prefs_db:   %lld rows had two turns of one role in a row, joined by a blank line\n",
                (long long)im.merged);
    for (int k = 0; k < SKIP_N; k++)
        if (im.skipped[k])
            fprintf(stderr, "prefs_db:   skipped %lld: %s\n", (long long)im.skipped[k],
                    import_skip_reason((SkipReason)k));
    jsonl_close(r);
    return ERR_OK;
}
