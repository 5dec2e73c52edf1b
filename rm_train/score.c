/*
 * rm_train score — what a reward model says about responses, batched (forward passes only).
 *
 * Store mode (no argument): every response of the store (of --iteration, when given) is scored and
 * written to the scores table as (response_id, NAME, score), NAME = --name or the model directory;
 * a second run replaces the scores. Chunks of 1024 responses are each scored with reward_score_text
 * (score.batch sequences per forward), with a progress line on stderr after each; the scores are all
 * written at the end, in one transaction: an interrupted run changes no score (only its row in the
 * runs table stays, status "running"), and the store's write lock is held for the inserts only.
 *
 * Pipe mode ("-"): JSONL records on stdin come back on stdout, in order, with score fields added:
 *     "text"                     -> "score"            (response records)
 *     "chosen", "rejected"       -> "chosen_score", "rejected_score"   (comparison records)
 *     "response_a", "response_b" -> "score_a", "score_b"               (pairs)
 * The prompt is the record's "prompt" object, or the record itself when it has a "dialogue"
 * ({"dialogue": [...ending with a user turn], "system"?: str}). A record with nothing to score, or
 * without a prompt, is an input error naming its line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "reward.h"
#include "rm_train.h"
#include "trainlog.h"
#include "util.h"

enum { CHUNK = 1024 };

/* ---- the store ---------------------------------------------------------------------------------- */

typedef struct {
    int64_t *id;
    json_t **dialogue;
    char **system, **text;
    int64_t n, cap;
} Responses;

static Err add_response(void *ctx, const StoreResponseRow *row) {
    Responses *r = ctx;
    json_error_t je;
    json_t *d = json_loads(row->prompt.dialogue, 0, &je);
    if (!d) return err_set(ERR_INPUT, "response %" PRId64 ": prompt dialogue: %s", row->r.id, je.text);
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->id = xrealloc(r->id, sizeof *r->id * (size_t)r->cap);
        r->dialogue = xrealloc(r->dialogue, sizeof *r->dialogue * (size_t)r->cap);
        r->system = xrealloc(r->system, sizeof *r->system * (size_t)r->cap);
        r->text = xrealloc(r->text, sizeof *r->text * (size_t)r->cap);
    }
    r->id[r->n] = row->r.id;
    r->dialogue[r->n] = d;
    r->system[r->n] = row->prompt.system ? xstrdup(row->prompt.system) : NULL;
    r->text[r->n] = xstrdup(row->r.text);
    r->n++;
    return ERR_OK;
}

static void responses_free(Responses *r) {
    for (int64_t i = 0; i < r->n; i++) {
        json_decref(r->dialogue[i]);
        free(r->system[i]);
        free(r->text[i]);
    }
    free(r->id);
    free(r->dialogue);
    free(r->system);
    free(r->text);
}

static Err score_store(RewardModel *rm, Store *db, const char *name, int64_t iteration, int64_t *n_out, double *secs) {
    Responses rs = {0};
    StoreFilter f = store_filter_any();
    f.iteration = iteration;
    Err rc = store_responses_each(db, &f, add_response, &rs);
    float *scores = xmalloc(sizeof *scores * (size_t)(rs.n ? rs.n : 1));
    double t = 0;
    for (int64_t start = 0; !rc && start < rs.n; start += CHUNK) {
        int n = rs.n - start < CHUNK ? (int)(rs.n - start) : CHUNK;
        double t0 = trainlog_now();
        rc = reward_score_text(rm, (const json_t *const *)rs.dialogue + start, (const char *const *)rs.system + start,
                               (const char *const *)rs.text + start, n, scores + start);
        t += trainlog_now() - t0;
        if (rc) {
            rc = err_prefix(rc, "responses from id %" PRId64 ": ", rs.id[start]);
            break;
        }
        fprintf(stderr, PROG " score: %" PRId64 "/%" PRId64 " responses\n", start + n, rs.n);
    }
    /* all or nothing */
    if (!rc && rs.n && !(rc = store_begin(db))) {
        for (int64_t i = 0; i < rs.n && !rc; i++)
            rc = store_score_put(db, &(StoreScore){.response_id = rs.id[i], .model = name, .score = scores[i]});
        if (rc) store_rollback(db);
        else rc = store_commit(db);
    }
    free(scores);
    *n_out = rs.n;
    *secs = t;
    responses_free(&rs);
    return rc;
}

/* ---- the pipe ----------------------------------------------------------------------------------- */

static const char *const FIELDS[][2] = {
    {"text", "score"}, {"chosen", "chosen_score"}, {"rejected", "rejected_score"},
    {"response_a", "score_a"}, {"response_b", "score_b"},
};
enum { N_FIELDS = sizeof FIELDS / sizeof FIELDS[0] };

typedef struct {
    json_t *rec[CHUNK];
    int n;                          /* records held */
    const json_t *dialogue[CHUNK * N_FIELDS];
    const char *system[CHUNK * N_FIELDS], *text[CHUNK * N_FIELDS];
    int rec_of[CHUNK * N_FIELDS], field_of[CHUNK * N_FIELDS];
    int m;                          /* texts to score */
    float scores[CHUNK * N_FIELDS];
} Chunk;

/* Queue the texts of one record; ERR_INPUT names what is missing. */
static Err queue(Chunk *ch, json_t *rec, const char *where) {
    if (!json_is_object(rec)) return err_set(ERR_INPUT, "%s: expected a JSON object", where);
    const json_t *prompt = json_object_get(rec, "dialogue") ? rec : json_object_get(rec, "prompt");
    const json_t *dialogue = json_object_get(prompt, "dialogue"), *system = json_object_get(prompt, "system");
    if (!json_is_array(dialogue))
        return err_set(ERR_INPUT, "%s: no prompt (a \"prompt\" object or a \"dialogue\" array)", where);
    if (system && !json_is_string(system) && !json_is_null(system))
        return err_set(ERR_INPUT, "%s: \"system\" must be a string", where);
    int found = 0;
    for (int f = 0; f < N_FIELDS; f++) {
        const json_t *t = json_object_get(rec, FIELDS[f][0]);
        if (!t) continue;
        if (!json_is_string(t)) return err_set(ERR_INPUT, "%s: \"%s\" must be a string", where, FIELDS[f][0]);
        ch->dialogue[ch->m] = dialogue;
        ch->system[ch->m] = json_string_value(system);
        ch->text[ch->m] = json_string_value(t);
        ch->rec_of[ch->m] = ch->n;
        ch->field_of[ch->m] = f;
        ch->m++;
        found++;
    }
    if (!found) return err_set(ERR_INPUT, "%s: nothing to score (text, chosen/rejected or response_a/response_b)", where);
    ch->rec[ch->n++] = rec;
    return ERR_OK;
}

static Err flush(RewardModel *rm, Chunk *ch, FILE *out, const char *where, double *secs) {
    double t0 = trainlog_now();
    Err rc = reward_score_text(rm, ch->dialogue, ch->system, ch->text, ch->m, ch->scores);
    *secs += trainlog_now() - t0;
    if (rc) rc = err_prefix(rc, "%s: ", where);
    for (int i = 0; !rc && i < ch->m; i++)
        json_object_set_new(ch->rec[ch->rec_of[i]], FIELDS[ch->field_of[i]][1], json_real(ch->scores[i]));
    for (int r = 0; r < ch->n; r++) {
        if (!rc) rc = jsonl_write(out, ch->rec[r]);
        json_decref(ch->rec[r]);
    }
    ch->n = ch->m = 0;
    return rc;
}

static Err score_pipe(RewardModel *rm, int64_t *n_out, double *secs) {
    JsonlReader *r;
    Err rc = jsonl_open(&r, "-");
    if (rc) return rc;
    Chunk *ch = xcalloc(1, sizeof *ch);
    json_t *v;
    int64_t line, first_line = 0, n = 0;
    char where[64];
    while ((rc = jsonl_next(r, &v, &line)) == ERR_OK && v) {
        snprintf(where, sizeof where, "%s:%" PRId64, jsonl_name(r), line);
        if (ch->n == 0) first_line = line;
        if ((rc = queue(ch, v, where))) {
            json_decref(v);
            break;
        }
        n += 1;
        if (ch->n == CHUNK) {
            snprintf(where, sizeof where, "%s:%" PRId64 "-%" PRId64, jsonl_name(r), first_line, line);
            if ((rc = flush(rm, ch, stdout, where, secs))) break;
        }
    }
    if (!rc && ch->n) {
        snprintf(where, sizeof where, "%s:%" PRId64 "-%" PRId64, jsonl_name(r), first_line, line);
        rc = flush(rm, ch, stdout, where, secs);
    }
    for (int i = 0; i < ch->n; i++) json_decref(ch->rec[i]);
    free(ch);
    jsonl_close(r);
    if (!rc && fflush(stdout) != 0) rc = err_set(ERR_RUNTIME, "<stdout>: write error");
    *n_out = n;
    return rc;
}

int rm_score_run(const RmOpts *o, RmCfg *c) {
    RewardModel rm;
    int rc = reward_load(&rm, o->cli.model, (int)c->score_batch);
    if (rc) {
        fprintf(stderr, PROG ": %s\n", err_msg());
        return rc;
    }
    int64_t n = 0;
    double secs = 0;
    if (o->cli.ninputs == 1) {
        rc = score_pipe(&rm, &n, &secs);
        if (!rc) fprintf(stderr, PROG ": scored %" PRId64 " records (%.1f records/s)\n", n, secs > 0 ? n / secs : 0);
    } else {
        Store *db = NULL;
        int64_t run_id = 0;
        char *config_text = config_dump_string(RM_SCHEMA, c), *ins = rm_inputs_json(o, o->cli.model);
        const char *name = o->name ? o->name : o->cli.model;
        if (!(rc = store_open(&db, o->cli.db)) && !(rc = store_run_begin(db, PROG " score", o->cli.iteration, config_text, ins, &run_id))) {
            rc = score_store(&rm, db, name, o->cli.iteration, &n, &secs);
            double rate = secs > 0 ? n / secs : 0;
            json_t *out = json_pack("{s:s, s:I, s:f}", "scores_model", name, "responses", (json_int_t)n,
                                    "responses_per_s", rate);
            char *outs = jsonl_dumps(out, JSON_COMPACT);
            json_decref(out);
            Err e2 = store_run_end(db, run_id, outs, rc ? "failed" : "ok");
            free(outs);
            if (!rc) rc = e2;
            if (!rc) printf("%s score: %" PRId64 " responses scored as '%s' (%.1f responses/s)\n", PROG, n, name, rate);
        }
        if (db) store_close(db);
        free(config_text);
        free(ins);
    }
    if (rc) fprintf(stderr, PROG ": %s\n", err_msg());
    reward_free(&rm);
    return rc;
}
