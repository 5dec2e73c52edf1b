/*
 * store — the preference store, prefs.db (SQLite). The only code in rlhf.c that speaks SQL.
 *
 * One file holds everything the pipeline learns from and about: prompts, the responses models
 * gave, human or simulated comparisons of two responses, reward scores, SFT examples, and a record
 * of every program run with its metrics. The tables and views are described in docs/store.md and in
 * the schema text in store.c; `sqlite3 prefs.db 'select * from v_comparisons limit 5'` reads it.
 *
 * How it is opened: WAL journal (readers never block the writer), foreign keys on, a busy timeout
 * so that two processes writing at once wait for each other instead of failing, and a
 * schema_version table with forward migrations applied on open. A file written by a newer schema
 * is refused (ERR_INPUT), never guessed at.
 *
 * Writes: single-row calls are atomic on their own. A caller that writes several rows wraps them
 * in store_begin/store_commit (or store_rollback); these nest (inner levels are savepoints), so an
 * importer can keep a whole file in one transaction and still undo a single bad line. A program
 * writes the rows of one run in one transaction at its end, never in pieces, so that an interrupted
 * run leaves none of them and a rerun stores one set; and it takes the write lock (store_begin is
 * BEGIN IMMEDIATE) only once the model work is done (docs/store.md, "One run, one transaction").
 *
 * Reads: the *_each calls run a callback per row, in id order, with a filter. Strings in the rows
 * point into SQLite's buffers and are valid only during the callback; copy what you keep. A
 * callback returning anything but ERR_OK stops the walk and that code is returned.
 *
 * Text fields: a dialogue is JSON text [{"role":"user"|"assistant","content":str},...] whose turns
 * alternate starting with the user; a prompt's dialogue ends with a user turn, an SFT example's
 * with an assistant turn. The store checks the shape and keeps the compact form written by
 * jansson, so the same dialogue is the same text and prompts deduplicate on (dialogue, system).
 * "system" is "" when there is none. Tags are a JSON object; "risk", when present, is
 * "adversarial", "borderline" or "none".
 */
#ifndef RLHF_STORE_H
#define RLHF_STORE_H

#include <stdint.h>

#include "err.h"

#define STORE_SCHEMA_VERSION 2

typedef struct Store Store;

/* ---- opening ---------------------------------------------------------------------------------- */

/* Open or create path and migrate it to STORE_SCHEMA_VERSION. */
Err store_open(Store **out, const char *path);
/* The same, but migrate no further than version (1..STORE_SCHEMA_VERSION): for migration tests. */
Err store_open_at(Store **out, const char *path, int version);
int store_schema_version(const Store *s);
/* How long a write waits for another process's transaction before failing (default 60000 ms). */
void store_set_busy_timeout(Store *s, int ms);
void store_close(Store *s);

/* ---- transactions ----------------------------------------------------------------------------- */

Err store_begin(Store *s);
/* A read transaction (outermost level only): the walks inside it see one snapshot, and writers
 * are not held up. End it with store_commit or store_rollback. */
Err store_begin_read(Store *s);
Err store_commit(Store *s);
/* Undo everything since the matching store_begin. */
void store_rollback(Store *s);

/* ---- rows --------------------------------------------------------------------------------------- */

typedef struct {
    int64_t id;
    const char *dialogue; /* JSON, ends with a user turn */
    const char *system;   /* NULL or "" = none */
    const char *tags;     /* JSON object or NULL */
    const char *split;    /* "train", "test" or NULL */
    const char *source;   /* where it came from ("hh-rlhf", "toyworld"), or NULL */
} StorePrompt;

typedef struct {
    int64_t id, prompt_id;
    const char *text;
    const char *model; /* the model that produced it */
    int64_t iteration;
    double temperature, top_p; /* NAN when unknown */
    const char *created_at;    /* ISO 8601 UTC; NULL on insert = now */
} StoreResponse;

enum { STORE_SAFE_UNKNOWN = -1 };

typedef struct {
    int64_t id, prompt_id, chosen_id, rejected_id;
    const char *dimension;       /* "helpfulness" or "safety" */
    int rating;                  /* 0 negligibly better/unsure, 1 slightly, 2 better, 3 significantly */
    int chosen_safe, rejected_safe; /* 1 safe, 0 unsafe, STORE_SAFE_UNKNOWN */
    const char *annotator;
    int64_t iteration;
    const char *split;      /* NULL on insert = the prompt's split */
    const char *created_at; /* NULL on insert = now */
} StoreComparison;

typedef struct {
    int64_t id;
    const char *dialogue;   /* JSON, ends with an assistant turn */
    const char *system;     /* NULL or "" = none */
    const char *loss_turns; /* "all", "last" or a JSON array of 0-based assistant-turn indices */
    const char *source;     /* "human", "rs" (rejection sampling) or "gatt" */
    int64_t iteration;
    const char *tags;       /* JSON object or NULL */
    const char *split;      /* "train", "test" or NULL */
    const char *created_at; /* NULL on insert = now */
} StoreSftExample;

typedef struct {
    int64_t response_id;
    const char *model; /* the reward model that gave the score */
    double score;
} StoreScore;

typedef struct {
    int64_t id;
    const char *program;
    int64_t iteration; /* -1 = none */
    const char *config, *inputs, *outputs;
    const char *started_at, *ended_at; /* ended_at NULL while running */
    const char *status;                /* "running", "ok" or "failed" */
} StoreRun;

typedef struct {
    int64_t run_id, step;
    const char *name;
    double value;
} StoreMetric;

/* Rows joined with their text, for readers. */
typedef struct {
    StoreResponse r;
    StorePrompt prompt;
} StoreResponseRow;

typedef struct {
    StoreComparison c;
    StorePrompt prompt;
    const char *chosen, *rejected;             /* response texts */
    const char *chosen_model, *rejected_model; /* their producing models */
} StoreComparisonRow;

/* Two responses to one prompt not yet compared (on a dimension), for annotation. */
typedef struct {
    StorePrompt prompt;
    int64_t a_id, b_id;
    const char *a, *b;
    const char *a_model, *b_model;
} StorePair;

/* ---- writing ------------------------------------------------------------------------------------ */

/* Insert a prompt, or find the one with the same (dialogue, system); *id is its id either way and
 * *created (may be NULL) says which. An existing prompt keeps its fields. */
Err store_prompt_put(Store *s, const StorePrompt *p, int64_t *id, int *created);
/* Set a prompt's split and the split of every comparison on it. */
Err store_prompt_set_split(Store *s, int64_t prompt_id, const char *split);
Err store_response_add(Store *s, const StoreResponse *r, int64_t *id);
/* The lowest id of a response to prompt_id with this text (and model, unless NULL); 0 if none. */
Err store_response_find(Store *s, int64_t prompt_id, const char *text, const char *model, int64_t *id);
/* The prompt of response id; ERR_INPUT if there is no such response. */
Err store_response_prompt(Store *s, int64_t response_id, int64_t *prompt_id);
/* prompt_id may be 0: it is then taken from the responses, which must share one prompt. */
Err store_comparison_add(Store *s, const StoreComparison *c, int64_t *id);
Err store_comparison_delete(Store *s, int64_t id);
Err store_sft_add(Store *s, const StoreSftExample *e, int64_t *id);
/* Insert or replace the score a reward model gave a response. */
Err store_score_put(Store *s, const StoreScore *sc);
/* Record that a program started (status "running"); config and inputs may be NULL. */
Err store_run_begin(Store *s, const char *program, int64_t iteration, const char *config,
                    const char *inputs, int64_t *run_id);
/* status is "ok" or "failed"; outputs may be NULL. */
Err store_run_end(Store *s, int64_t run_id, const char *outputs, const char *status);
/* Insert or replace metric (run, name, step). */
Err store_metric_put(Store *s, int64_t run_id, int64_t step, const char *name, double value);

/* ---- reading ------------------------------------------------------------------------------------ */

/* NULL / negative fields match anything. Which fields a walk looks at is said at each call. */
typedef struct {
    const char *split;
    int64_t iteration;
    const char *dimension;
    const char *model;
    const char *source;
    const char *risk;
    int64_t limit; /* <= 0: no limit */
} StoreFilter;

/* A filter that matches every row. */
StoreFilter store_filter_any(void);

typedef Err (*StorePromptFn)(void *ctx, const StorePrompt *p);
typedef Err (*StoreResponseFn)(void *ctx, const StoreResponseRow *r);
typedef Err (*StoreComparisonFn)(void *ctx, const StoreComparisonRow *c);
typedef Err (*StoreSftFn)(void *ctx, const StoreSftExample *e);
typedef Err (*StoreScoreFn)(void *ctx, const StoreScore *sc);
typedef Err (*StoreRunFn)(void *ctx, const StoreRun *r);
typedef Err (*StoreMetricFn)(void *ctx, const StoreMetric *m);
typedef Err (*StorePairFn)(void *ctx, const StorePair *p);

/* Filter: split, source, risk, limit. */
Err store_prompts_each(Store *s, const StoreFilter *f, StorePromptFn fn, void *ctx);
/* Filter: split (of the prompt), iteration, model, limit. */
Err store_responses_each(Store *s, const StoreFilter *f, StoreResponseFn fn, void *ctx);
/* Filter: split, iteration, dimension, model (of either response), limit. */
Err store_comparisons_each(Store *s, const StoreFilter *f, StoreComparisonFn fn, void *ctx);
/* Filter: split, iteration, source, limit. */
Err store_sft_each(Store *s, const StoreFilter *f, StoreSftFn fn, void *ctx);
/* Filter: model (of the reward model), limit. */
Err store_scores_each(Store *s, const StoreFilter *f, StoreScoreFn fn, void *ctx);
/* Filter: iteration, limit. */
Err store_runs_each(Store *s, const StoreFilter *f, StoreRunFn fn, void *ctx);
/* All metrics of run_id (or of every run if run_id <= 0), by run, name, step. */
Err store_metrics_each(Store *s, int64_t run_id, StoreMetricFn fn, void *ctx);
/* Pairs (a, b), a.id < b.id, of different responses to one prompt with no comparison of them on
 * dimension (or, when dimension is NULL, none at all). Filter: split (of the prompt), iteration
 * (of both responses), limit. In (prompt, a, b) order. */
Err store_pending_pairs_each(Store *s, const char *dimension, const StoreFilter *f, StorePairFn fn,
                             void *ctx);

/* Row count of a table or view by name ("prompts", "v_comparisons", ...); ERR_INPUT if unknown. */
Err store_count(Store *s, const char *table, int64_t *n);

#endif
