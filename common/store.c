/*
 * store — see store.h for the contract and docs/store.md for the tables as users see them.
 *
 * Schema history (each step is applied in its own transaction and recorded in schema_version):
 *   1  prompts, responses, comparisons, scores, sft_examples, runs, metrics
 *   2  responses.top_p (a sampling setting beside temperature) and the views for humans
 * A migration only ever adds; a file whose schema_version is above STORE_SCHEMA_VERSION came from a
 * newer build and is refused.
 *
 * Statements: single-row statements are prepared once per connection and cached (cached_stmt);
 * the *_each walks prepare their own, so a callback may call back into the store. Filters are
 * bound parameters of fixed statements ("?1 IS NULL OR split = ?1"), never SQL text built from
 * input.
 */
#include "store.h"

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* ---- schema ----------------------------------------------------------------------------------- */

#define NOW "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

static const char *const MIGRATIONS[STORE_SCHEMA_VERSION] = {
    /* 1 */
    "CREATE TABLE prompts(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  dialogue TEXT NOT NULL CHECK (json_valid(dialogue) AND json_type(dialogue) = 'array'),\n"
    "  system TEXT NOT NULL DEFAULT '',\n"
    "  tags TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(tags) AND json_type(tags) = 'object'),\n"
    "  split TEXT CHECK (split IN ('train', 'test')),\n"
    "  source TEXT,\n"
    "  UNIQUE (dialogue, system));\n"
    "CREATE TABLE responses(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  prompt_id INTEGER NOT NULL REFERENCES prompts(id),\n"
    "  text TEXT NOT NULL,\n"
    "  model TEXT NOT NULL,\n"
    "  iteration INTEGER NOT NULL DEFAULT 0 CHECK (iteration >= 0),\n"
    "  temperature REAL,\n"
    "  created_at TEXT NOT NULL);\n"
    "CREATE INDEX responses_prompt ON responses(prompt_id);\n"
    "CREATE TABLE comparisons(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  prompt_id INTEGER NOT NULL REFERENCES prompts(id),\n"
    "  chosen_id INTEGER NOT NULL REFERENCES responses(id),\n"
    "  rejected_id INTEGER NOT NULL REFERENCES responses(id),\n"
    "  dimension TEXT NOT NULL CHECK (dimension IN ('helpfulness', 'safety')),\n"
    "  rating INTEGER NOT NULL CHECK (rating BETWEEN 0 AND 3),\n"
    "  chosen_safe INTEGER CHECK (chosen_safe IN (0, 1)),\n"
    "  rejected_safe INTEGER CHECK (rejected_safe IN (0, 1)),\n"
    "  annotator TEXT NOT NULL,\n"
    "  iteration INTEGER NOT NULL DEFAULT 0 CHECK (iteration >= 0),\n"
    "  split TEXT CHECK (split IN ('train', 'test')),\n"
    "  created_at TEXT NOT NULL,\n"
    "  CHECK (chosen_id <> rejected_id));\n"
    "CREATE INDEX comparisons_prompt ON comparisons(prompt_id);\n"
    "CREATE INDEX comparisons_pair ON comparisons(chosen_id, rejected_id);\n"
    "CREATE INDEX comparisons_rejected ON comparisons(rejected_id);\n"
    "CREATE TABLE scores(\n"
    "  response_id INTEGER NOT NULL REFERENCES responses(id),\n"
    "  model TEXT NOT NULL,\n"
    "  score REAL NOT NULL,\n"
    "  PRIMARY KEY (response_id, model));\n"
    "CREATE TABLE sft_examples(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  dialogue TEXT NOT NULL CHECK (json_valid(dialogue) AND json_type(dialogue) = 'array'),\n"
    "  system TEXT NOT NULL DEFAULT '',\n"
    "  loss_turns TEXT NOT NULL DEFAULT 'all',\n"
    "  source TEXT NOT NULL CHECK (source IN ('human', 'rs', 'gatt')),\n"
    "  iteration INTEGER NOT NULL DEFAULT 0 CHECK (iteration >= 0),\n"
    "  tags TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(tags) AND json_type(tags) = 'object'),\n"
    "  split TEXT CHECK (split IN ('train', 'test')),\n"
    "  created_at TEXT NOT NULL);\n"
    "CREATE TABLE runs(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  program TEXT NOT NULL,\n"
    "  iteration INTEGER,\n"
    "  config TEXT NOT NULL DEFAULT '',\n"
    "  inputs TEXT NOT NULL DEFAULT '',\n"
    "  outputs TEXT NOT NULL DEFAULT '',\n"
    "  started_at TEXT NOT NULL,\n"
    "  ended_at TEXT,\n"
    "  status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed')));\n"
    "CREATE TABLE metrics(\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
    "  step INTEGER NOT NULL,\n"
    "  name TEXT NOT NULL,\n"
    "  value REAL NOT NULL,\n"
    "  PRIMARY KEY (run_id, name, step));\n",
    /* 2 */
    "ALTER TABLE responses ADD COLUMN top_p REAL;\n"
    "CREATE VIEW v_comparisons AS SELECT c.id, c.dimension, c.rating,\n"
    "  CASE c.rating WHEN 0 THEN 'negligibly better / unsure' WHEN 1 THEN 'slightly better'\n"
    "    WHEN 2 THEN 'better' ELSE 'significantly better' END AS rating_label,\n"
    "  json_extract(p.dialogue, '$[#-1].content') AS prompt, ch.text AS chosen, rj.text AS rejected,\n"
    "  c.chosen_safe, c.rejected_safe, c.annotator, c.iteration, c.split,\n"
    "  ch.model AS chosen_model, rj.model AS rejected_model,\n"
    "  json_array_length(p.dialogue) AS prompt_turns, p.system, c.prompt_id, c.chosen_id, c.rejected_id\n"
    "  FROM comparisons c JOIN prompts p ON p.id = c.prompt_id\n"
    "  JOIN responses ch ON ch.id = c.chosen_id JOIN responses rj ON rj.id = c.rejected_id;\n"
    "CREATE VIEW v_responses AS SELECT r.id, json_extract(p.dialogue, '$[#-1].content') AS prompt,\n"
    "  r.text, r.model, r.iteration, r.temperature, r.top_p, p.split, r.created_at, r.prompt_id\n"
    "  FROM responses r JOIN prompts p ON p.id = r.prompt_id;\n"
    "CREATE VIEW v_scores AS SELECT s.response_id, s.model AS reward_model, s.score,\n"
    "  r.model AS policy, r.iteration, json_extract(p.dialogue, '$[#-1].content') AS prompt, r.text\n"
    "  FROM scores s JOIN responses r ON r.id = s.response_id JOIN prompts p ON p.id = r.prompt_id;\n"
    "CREATE VIEW v_sft_examples AS SELECT e.id, e.source, e.iteration, e.split,\n"
    "  json_array_length(e.dialogue) AS turns, e.loss_turns, e.system,\n"
    "  json_extract(e.dialogue, '$[0].content') AS first_user,\n"
    "  json_extract(e.dialogue, '$[#-1].content') AS last_assistant\n"
    "  FROM sft_examples e;\n"
    "CREATE VIEW v_runs AS SELECT r.id, r.program, r.iteration, r.status, r.started_at, r.ended_at,\n"
    "  (SELECT count(*) FROM metrics m WHERE m.run_id = r.id) AS metrics, r.inputs, r.outputs\n"
    "  FROM runs r;\n"
    "CREATE VIEW v_iterations AS SELECT iteration,\n"
    "  sum(kind = 'response') AS responses,\n"
    "  sum(kind = 'helpfulness') AS helpfulness_comparisons,\n"
    "  sum(kind = 'safety') AS safety_comparisons,\n"
    "  sum(kind = 'sft') AS sft_examples,\n"
    "  sum(kind = 'run') AS runs\n"
    "  FROM (SELECT iteration, 'response' AS kind FROM responses\n"
    "        UNION ALL SELECT iteration, dimension FROM comparisons\n"
    "        UNION ALL SELECT iteration, 'sft' FROM sft_examples\n"
    "        UNION ALL SELECT iteration, 'run' FROM runs WHERE iteration IS NOT NULL)\n"
    "  GROUP BY iteration ORDER BY iteration;\n",
};

/* Tables and views store_count may name: a fixed list, since a table name cannot be a parameter. */
static const char *const COUNTABLE[] = {
    "prompts",  "responses",     "comparisons", "scores",         "sft_examples",   "runs",
    "metrics",  "v_comparisons", "v_responses", "v_scores",       "v_sft_examples", "v_runs",
    "v_iterations",
};
#define N_COUNTABLE (sizeof COUNTABLE / sizeof COUNTABLE[0])

/* ---- connection ------------------------------------------------------------------------------- */

typedef enum {
    ST_PROMPT_INSERT,
    ST_PROMPT_FIND,
    ST_PROMPT_SPLIT,
    ST_PROMPT_SPLIT_COMPARISONS,
    ST_RESPONSE_INSERT,
    ST_RESPONSE_FIND,
    ST_RESPONSE_PROMPT,
    ST_COMPARISON_INSERT,
    ST_COMPARISON_DELETE,
    ST_PROMPT_SPLIT_OF,
    ST_SFT_INSERT,
    ST_SCORE_PUT,
    ST_RUN_BEGIN,
    ST_RUN_END,
    ST_METRIC_PUT,
    ST_COUNT0, /* + index into COUNTABLE */
    ST_N = ST_COUNT0 + N_COUNTABLE
} StmtId;

struct Store {
    sqlite3 *db;
    char *path;
    int version;
    int depth; /* store_begin nesting */
    sqlite3_stmt *stmt[ST_N];
};

static const char *const STMT_SQL[ST_COUNT0] = {
    [ST_PROMPT_INSERT] = "INSERT INTO prompts(dialogue, system, tags, split, source) "
                         "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (dialogue, system) DO NOTHING",
    [ST_PROMPT_FIND] = "SELECT id FROM prompts WHERE dialogue = ?1 AND system = ?2",
    [ST_PROMPT_SPLIT] = "UPDATE prompts SET split = ?2 WHERE id = ?1",
    [ST_PROMPT_SPLIT_COMPARISONS] = "UPDATE comparisons SET split = ?2 WHERE prompt_id = ?1",
    [ST_RESPONSE_INSERT] = "INSERT INTO responses(prompt_id, text, model, iteration, temperature, "
                           "top_p, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, coalesce(?7, " NOW "))",
    [ST_RESPONSE_FIND] = "SELECT min(id) FROM responses WHERE prompt_id = ?1 AND text = ?2 "
                         "AND (?3 IS NULL OR model = ?3)",
    [ST_RESPONSE_PROMPT] = "SELECT prompt_id FROM responses WHERE id = ?1",
    [ST_COMPARISON_INSERT] =
        "INSERT INTO comparisons(prompt_id, chosen_id, rejected_id, dimension, rating, chosen_safe, "
        "rejected_safe, annotator, iteration, split, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
        "?8, ?9, coalesce(?10, (SELECT split FROM prompts WHERE id = ?1)), coalesce(?11, " NOW "))",
    [ST_COMPARISON_DELETE] = "DELETE FROM comparisons WHERE id = ?1",
    [ST_PROMPT_SPLIT_OF] = "SELECT split FROM prompts WHERE id = ?1",
    [ST_SFT_INSERT] = "INSERT INTO sft_examples(dialogue, system, loss_turns, source, iteration, tags, "
                      "split, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, coalesce(?8, " NOW "))",
    [ST_SCORE_PUT] = "INSERT OR REPLACE INTO scores(response_id, model, score) VALUES (?1, ?2, ?3)",
    [ST_RUN_BEGIN] = "INSERT INTO runs(program, iteration, config, inputs, started_at, status) "
                     "VALUES (?1, ?2, coalesce(?3, ''), coalesce(?4, ''), " NOW ", 'running')",
    [ST_RUN_END] = "UPDATE runs SET outputs = coalesce(?2, outputs), status = ?3, ended_at = " NOW
                   " WHERE id = ?1",
    [ST_METRIC_PUT] = "INSERT OR REPLACE INTO metrics(run_id, step, name, value) VALUES (?1, ?2, ?3, ?4)",
};

/* Turn the connection's last error into an Err: constraint failures are the input's fault. */
static Err db_fail(Store *s, const char *what) {
    int code = sqlite3_errcode(s->db) & 0xff;
    Err e = (code == SQLITE_CONSTRAINT || code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
                ? ERR_INPUT
                : ERR_RUNTIME;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        return err_set(e, "%s: %s: database busy (another process kept it locked too long)", s->path,
                       what);
    return err_set(e, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static Err stmt_get(Store *s, StmtId id, sqlite3_stmt **out) {
    if (!s->stmt[id]) {
        const char *sql;
        char buf[128];
        if (id >= ST_COUNT0) {
            /* The name comes from COUNTABLE, never from the caller's string. */
            snprintf(buf, sizeof buf, "SELECT count(*) FROM %s", COUNTABLE[id - ST_COUNT0]);
            sql = buf;
        } else {
            sql = STMT_SQL[id];
        }
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[id], NULL) !=
            SQLITE_OK)
            return db_fail(s, "preparing a statement");
    }
    sqlite3_reset(s->stmt[id]);
    sqlite3_clear_bindings(s->stmt[id]);
    *out = s->stmt[id];
    return ERR_OK;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

static void bind_real(sqlite3_stmt *st, int i, double v) {
    if (isnan(v)) sqlite3_bind_null(st, i);
    else sqlite3_bind_double(st, i, v);
}

static const char *col_text(sqlite3_stmt *st, int i) { return (const char *)sqlite3_column_text(st, i); }

static double col_real(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* Run a statement that returns no rows (or whose rows we ignore). */
static Err step_done(Store *s, sqlite3_stmt *st, const char *what) {
    int rc = sqlite3_step(st);
    while (rc == SQLITE_ROW) rc = sqlite3_step(st);
    Err e = rc == SQLITE_DONE ? ERR_OK : db_fail(s, what);
    sqlite3_reset(st);
    return e;
}

/* Run a statement returning one integer; *found = 0 (and *v = 0) when there is no row or NULL. */
static Err step_int(Store *s, sqlite3_stmt *st, const char *what, int64_t *v, int *found) {
    *v = 0;
    *found = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
            *v = sqlite3_column_int64(st, 0);
            *found = 1;
        }
        rc = SQLITE_DONE;
    }
    Err e = rc == SQLITE_DONE ? ERR_OK : db_fail(s, what);
    sqlite3_reset(st);
    return e;
}

static Err exec(Store *s, const char *sql, const char *what) {
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? ERR_OK : db_fail(s, what);
}

/* ---- transactions ----------------------------------------------------------------------------- */

Err store_begin(Store *s) {
    if (s->depth > 0) {
        Err e = exec(s, "SAVEPOINT nested", "starting a savepoint");
        if (e == ERR_OK) s->depth++;
        return e;
    }
    /* IMMEDIATE takes the write lock now, so two writers queue on the busy timeout here rather
     * than one failing later with SQLITE_BUSY_SNAPSHOT. A few retries cover the rare case where
     * the busy handler gives up early (a checkpoint holding the WAL index). */
    Err e = ERR_OK;
    for (int attempt = 0; attempt < 5; attempt++) {
        e = exec(s, "BEGIN IMMEDIATE", "starting a transaction");
        if (e == ERR_OK) break;
        int code = sqlite3_errcode(s->db) & 0xff;
        if (code != SQLITE_BUSY && code != SQLITE_LOCKED) break;
        usleep(100000u << attempt);
    }
    if (e == ERR_OK) s->depth = 1;
    return e;
}

Err store_begin_read(Store *s) {
    ASSERT(s->depth == 0);
    Err e = exec(s, "BEGIN DEFERRED", "starting a read transaction");
    if (e == ERR_OK) s->depth = 1;
    return e;
}

Err store_commit(Store *s) {
    ASSERT(s->depth > 0);
    Err e = s->depth > 1 ? exec(s, "RELEASE nested", "releasing a savepoint")
                         : exec(s, "COMMIT", "committing");
    if (e != ERR_OK) {
        store_rollback(s);
        return e;
    }
    s->depth--;
    return ERR_OK;
}

void store_rollback(Store *s) {
    ASSERT(s->depth > 0);
    if (s->depth > 1) sqlite3_exec(s->db, "ROLLBACK TO nested; RELEASE nested", NULL, NULL, NULL);
    else sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->depth--;
}

/* ---- opening ---------------------------------------------------------------------------------- */

static Err read_version(Store *s, int *version, int *has_other_tables) {
    sqlite3_stmt *st;
    *version = 0;
    *has_other_tables = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT (SELECT count(*) FROM sqlite_master WHERE name = 'schema_version'),"
                           " (SELECT count(*) FROM sqlite_master WHERE type = 'table')",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "reading the schema");
    int has_table = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        has_table = sqlite3_column_int(st, 0);
        *has_other_tables = sqlite3_column_int(st, 1) > has_table;
    }
    sqlite3_finalize(st);
    if (!has_table) return ERR_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(s, "reading schema_version");
    if (sqlite3_step(st) == SQLITE_ROW) *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return ERR_OK;
}

static Err migrate(Store *s, int target) {
    int version, other;
    /* Up to date is the common case: answer it with a read, which never waits for a writer. */
    Err e = read_version(s, &version, &other);
    if (e != ERR_OK) return e;
    if (version >= target && version <= STORE_SCHEMA_VERSION) {
        s->version = version;
        return ERR_OK;
    }
    if ((e = store_begin(s)) != ERR_OK) return e;
    /* Read inside the write transaction: another process may have migrated meanwhile. */
    if ((e = read_version(s, &version, &other)) != ERR_OK) goto fail;
    if (version > STORE_SCHEMA_VERSION) {
        e = err_set(ERR_INPUT,
                    "%s: written by a newer rlhf.c (schema version %d; this build reads up to %d)",
                    s->path, version, STORE_SCHEMA_VERSION);
        goto fail;
    }
    if (version == 0 && other) {
        e = err_set(ERR_INPUT, "%s: not a preference store (it has tables but no schema_version)",
                    s->path);
        goto fail;
    }
    if (version == 0 &&
        (e = exec(s, "CREATE TABLE schema_version(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
                  "creating schema_version")) != ERR_OK)
        goto fail;
    for (int v = version + 1; v <= target; v++) {
        char what[64];
        snprintf(what, sizeof what, "migrating to schema version %d", v);
        if ((e = exec(s, MIGRATIONS[v - 1], what)) != ERR_OK) goto fail;
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(s->db, "INSERT INTO schema_version VALUES (?1, " NOW ")", -1, &st,
                               NULL) != SQLITE_OK) {
            e = db_fail(s, what);
            goto fail;
        }
        sqlite3_bind_int(st, 1, v);
        e = step_done(s, st, what);
        sqlite3_finalize(st);
        if (e != ERR_OK) goto fail;
    }
    s->version = version > target ? version : target;
    return store_commit(s);
fail:
    store_rollback(s);
    return e;
}

void store_set_busy_timeout(Store *s, int ms) { sqlite3_busy_timeout(s->db, ms); }

Err store_open_at(Store **out, const char *path, int version) {
    ASSERT(version >= 1 && version <= STORE_SCHEMA_VERSION);
    *out = NULL;
    Store *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    Err e;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        e = s->db ? err_set(ERR_INPUT, "%s: %s", path, sqlite3_errmsg(s->db))
                  : err_set(ERR_RUNTIME, "%s: out of memory opening the database", path);
        goto fail;
    }
    store_set_busy_timeout(s, 60000);
    if ((e = exec(s, "PRAGMA foreign_keys = ON", "enabling foreign keys")) != ERR_OK) goto fail;
    /* journal_mode=WAL needs an exclusive lock on a file still in rollback mode, and when two
     * processes open a new file at once SQLite may answer SQLITE_BUSY at once instead of calling the
     * busy handler (the lock upgrade could deadlock). So retry for up to the busy timeout. */
    for (int tries = 0;; tries++) {
        int rc = sqlite3_exec(s->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK) break;
        if ((rc & 0xff) != SQLITE_BUSY || tries >= 600) {
            e = db_fail(s, "switching to WAL");
            goto fail;
        }
        usleep(100 * 1000);
    }
    if ((e = exec(s, "PRAGMA synchronous = NORMAL", "setting synchronous")) != ERR_OK ||
        (e = migrate(s, version)) != ERR_OK)
        goto fail;
    *out = s;
    return ERR_OK;
fail:
    store_close(s);
    return e;
}

Err store_open(Store **out, const char *path) { return store_open_at(out, path, STORE_SCHEMA_VERSION); }

int store_schema_version(const Store *s) { return s->version; }

void store_close(Store *s) {
    if (!s) return;
    while (s->depth > 0) store_rollback(s);
    for (int i = 0; i < ST_N; i++) sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

/* ---- checking and canonical text -------------------------------------------------------------- */

/* Check a dialogue's shape; *canon = its compact text (free it). end_user: the last turn's role. */
static Err dialogue_canon(const char *text, int end_user, char **canon) {
    *canon = NULL;
    if (!text) return err_set(ERR_INPUT, "dialogue missing");
    json_error_t je;
    json_t *d = json_loads(text, 0, &je);
    if (!d) return err_set(ERR_INPUT, "dialogue is not JSON: %s", je.text);
    Err e = ERR_OK;
    size_t n = json_is_array(d) ? json_array_size(d) : 0;
    if (n == 0) {
        e = err_set(ERR_INPUT, "dialogue must be a non-empty array of turns");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(d, i);
        const char *want = i % 2 == 0 ? "user" : "assistant";
        json_t *role = json_object_get(t, "role"), *content = json_object_get(t, "content");
        if (!json_is_object(t) || json_object_size(t) != 2 || !json_is_string(role) ||
            !json_is_string(content)) {
            e = err_set(ERR_INPUT, "dialogue turn %zu must be {\"role\": str, \"content\": str}", i);
            goto out;
        }
        if (strcmp(json_string_value(role), "user") != 0 &&
            strcmp(json_string_value(role), "assistant") != 0) {
            e = err_set(ERR_INPUT, "dialogue turn %zu: role must be \"user\" or \"assistant\"", i);
            goto out;
        }
        if (strcmp(json_string_value(role), want) != 0) {
            e = err_set(ERR_INPUT, "dialogue turn %zu: turns must alternate user, assistant, ... "
                                   "(expected \"%s\")", i, want);
            goto out;
        }
    }
    if ((n % 2 == 1) != (end_user != 0)) {
        e = err_set(ERR_INPUT, "dialogue must end with %s turn", end_user ? "a user" : "an assistant");
        goto out;
    }
    /* Rebuild each turn as {role, content}, so key order does not split one prompt in two. */
    json_t *c = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(d, i);
        json_array_append_new(c, json_pack("{sOsO}", "role", json_object_get(t, "role"), "content",
                                           json_object_get(t, "content")));
    }
    *canon = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    if (!*canon) e = err_set(ERR_INPUT, "dialogue cannot be written as JSON");
out:
    json_decref(d);
    return e;
}

static Err tags_canon(const char *text, char **canon) {
    *canon = NULL;
    if (!text) {
        *canon = xstrdup("{}");
        return ERR_OK;
    }
    json_error_t je;
    json_t *t = json_loads(text, 0, &je);
    if (!t) return err_set(ERR_INPUT, "tags are not JSON: %s", je.text);
    Err e = ERR_OK;
    json_t *risk = json_object_get(t, "risk");
    if (!json_is_object(t)) {
        e = err_set(ERR_INPUT, "tags must be a JSON object");
    } else if (risk && !(json_is_string(risk) &&
                         (strcmp(json_string_value(risk), "adversarial") == 0 ||
                          strcmp(json_string_value(risk), "borderline") == 0 ||
                          strcmp(json_string_value(risk), "none") == 0))) {
        e = err_set(ERR_INPUT, "tags.risk must be \"adversarial\", \"borderline\" or \"none\"");
    } else if (!(*canon = json_dumps(t, JSON_COMPACT))) {
        e = err_set(ERR_INPUT, "tags cannot be written as JSON");
    }
    json_decref(t);
    return e;
}

static Err check_split(const char *split) {
    if (split && strcmp(split, "train") != 0 && strcmp(split, "test") != 0)
        return err_set(ERR_INPUT, "split must be \"train\" or \"test\", not \"%s\"", split);
    return ERR_OK;
}

/* "all", "last" or a JSON array of distinct indices below n_assistant; *canon = compact text. */
static Err loss_turns_canon(const char *text, size_t n_assistant, char **canon) {
    *canon = NULL;
    if (!text || strcmp(text, "all") == 0 || strcmp(text, "last") == 0) {
        *canon = xstrdup(text ? text : "all");
        return ERR_OK;
    }
    json_error_t je;
    json_t *a = json_loads(text, 0, &je);
    Err e = ERR_OK;
    if (!json_is_array(a) || json_array_size(a) == 0) {
        e = err_set(ERR_INPUT, "loss_turns must be \"all\", \"last\" or a non-empty array of indices");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (size_t)json_integer_value(v) >= n_assistant) {
            e = err_set(ERR_INPUT, "loss_turns[%zu] must be an assistant-turn index in 0..%zu", i,
                        n_assistant - 1);
            goto out;
        }
    }
    *canon = json_dumps(a, JSON_COMPACT);
out:
    json_decref(a);
    return e;
}

/* ---- writing ---------------------------------------------------------------------------------- */

Err store_prompt_put(Store *s, const StorePrompt *p, int64_t *id, int *created) {
    char *dialogue = NULL, *tags = NULL;
    const char *system = p->system ? p->system : "";
    sqlite3_stmt *st;
    int found;
    Err e;
    if ((e = dialogue_canon(p->dialogue, 1, &dialogue)) != ERR_OK ||
        (e = tags_canon(p->tags, &tags)) != ERR_OK || (e = check_split(p->split)) != ERR_OK)
        goto out;
    if ((e = stmt_get(s, ST_PROMPT_INSERT, &st)) != ERR_OK) goto out;
    bind_text(st, 1, dialogue);
    bind_text(st, 2, system);
    bind_text(st, 3, tags);
    bind_text(st, 4, p->split);
    bind_text(st, 5, p->source);
    if ((e = step_done(s, st, "inserting a prompt")) != ERR_OK) goto out;
    int inserted = sqlite3_changes(s->db) > 0;
    if (inserted) {
        *id = sqlite3_last_insert_rowid(s->db);
    } else {
        if ((e = stmt_get(s, ST_PROMPT_FIND, &st)) != ERR_OK) goto out;
        bind_text(st, 1, dialogue);
        bind_text(st, 2, system);
        if ((e = step_int(s, st, "finding a prompt", id, &found)) != ERR_OK) goto out;
        ASSERT(found);
    }
    if (created) *created = inserted;
out:
    free(dialogue);
    free(tags);
    return e;
}

Err store_prompt_set_split(Store *s, int64_t prompt_id, const char *split) {
    sqlite3_stmt *st;
    Err e;
    if ((e = check_split(split)) != ERR_OK || (e = store_begin(s)) != ERR_OK) return e;
    if ((e = stmt_get(s, ST_PROMPT_SPLIT, &st)) != ERR_OK) goto fail;
    sqlite3_bind_int64(st, 1, prompt_id);
    bind_text(st, 2, split);
    if ((e = step_done(s, st, "setting a prompt's split")) != ERR_OK) goto fail;
    if (sqlite3_changes(s->db) == 0) {
        e = err_set(ERR_INPUT, "prompt %lld does not exist", (long long)prompt_id);
        goto fail;
    }
    if ((e = stmt_get(s, ST_PROMPT_SPLIT_COMPARISONS, &st)) != ERR_OK) goto fail;
    sqlite3_bind_int64(st, 1, prompt_id);
    bind_text(st, 2, split);
    if ((e = step_done(s, st, "setting the split of comparisons")) != ERR_OK) goto fail;
    return store_commit(s);
fail:
    store_rollback(s);
    return e;
}

static Err check_nonempty(const char *v, const char *name) {
    if (!v || !*v) return err_set(ERR_INPUT, "%s missing", name);
    return ERR_OK;
}

Err store_response_add(Store *s, const StoreResponse *r, int64_t *id) {
    sqlite3_stmt *st;
    Err e;
    if (!r->text) return err_set(ERR_INPUT, "response text missing");
    if ((e = check_nonempty(r->model, "response model")) != ERR_OK) return e;
    if (r->iteration < 0) return err_set(ERR_INPUT, "iteration must be >= 0");
    if ((e = stmt_get(s, ST_RESPONSE_INSERT, &st)) != ERR_OK) return e;
    sqlite3_bind_int64(st, 1, r->prompt_id);
    bind_text(st, 2, r->text);
    bind_text(st, 3, r->model);
    sqlite3_bind_int64(st, 4, r->iteration);
    bind_real(st, 5, r->temperature);
    bind_real(st, 6, r->top_p);
    bind_text(st, 7, r->created_at);
    if ((e = step_done(s, st, "inserting a response")) != ERR_OK) {
        if (e == ERR_INPUT)
            return err_set(ERR_INPUT, "response: prompt %lld does not exist", (long long)r->prompt_id);
        return e;
    }
    *id = sqlite3_last_insert_rowid(s->db);
    return ERR_OK;
}

Err store_response_find(Store *s, int64_t prompt_id, const char *text, const char *model, int64_t *id) {
    sqlite3_stmt *st;
    int found;
    Err e = stmt_get(s, ST_RESPONSE_FIND, &st);
    if (e != ERR_OK) return e;
    sqlite3_bind_int64(st, 1, prompt_id);
    bind_text(st, 2, text);
    bind_text(st, 3, model);
    return step_int(s, st, "finding a response", id, &found);
}

Err store_response_prompt(Store *s, int64_t response_id, int64_t *prompt_id) {
    sqlite3_stmt *st;
    int found;
    Err e = stmt_get(s, ST_RESPONSE_PROMPT, &st);
    if (e != ERR_OK) return e;
    sqlite3_bind_int64(st, 1, response_id);
    if ((e = step_int(s, st, "finding a response", prompt_id, &found)) != ERR_OK) return e;
    if (!found) return err_set(ERR_INPUT, "response %lld does not exist", (long long)response_id);
    return ERR_OK;
}

static int is_dimension(const char *d) {
    return d && (strcmp(d, "helpfulness") == 0 || strcmp(d, "safety") == 0);
}

static void bind_safe(sqlite3_stmt *st, int i, int v) {
    if (v == STORE_SAFE_UNKNOWN) sqlite3_bind_null(st, i);
    else sqlite3_bind_int(st, i, v);
}

Err store_comparison_add(Store *s, const StoreComparison *c, int64_t *id) {
    sqlite3_stmt *st;
    Err e;
    int64_t pc, pr;
    if (!is_dimension(c->dimension))
        return err_set(ERR_INPUT, "dimension must be \"helpfulness\" or \"safety\"");
    if (c->rating < 0 || c->rating > 3) return err_set(ERR_INPUT, "rating must be 0, 1, 2 or 3");
    for (int k = 0; k < 2; k++) {
        int v = k ? c->rejected_safe : c->chosen_safe;
        if (v != 0 && v != 1 && v != STORE_SAFE_UNKNOWN)
            return err_set(ERR_INPUT, "%s_safe must be 0, 1 or unknown", k ? "rejected" : "chosen");
    }
    if ((e = check_nonempty(c->annotator, "annotator")) != ERR_OK) return e;
    if (c->iteration < 0) return err_set(ERR_INPUT, "iteration must be >= 0");
    if ((e = check_split(c->split)) != ERR_OK) return e;
    if (c->chosen_id == c->rejected_id)
        return err_set(ERR_INPUT, "chosen and rejected are the same response (%lld)",
                       (long long)c->chosen_id);
    /* Foreign keys would catch a missing response too, but not a pair from two prompts, and their
     * message does not say which id. */
    if ((e = store_response_prompt(s, c->chosen_id, &pc)) != ERR_OK ||
        (e = store_response_prompt(s, c->rejected_id, &pr)) != ERR_OK)
        return err_prefix(e, "comparison: ");
    if (pc != pr || (c->prompt_id && c->prompt_id != pc))
        return err_set(ERR_INPUT, "comparison: responses %lld and %lld do not answer the same prompt",
                       (long long)c->chosen_id, (long long)c->rejected_id);
    if ((e = stmt_get(s, ST_COMPARISON_INSERT, &st)) != ERR_OK) return e;
    sqlite3_bind_int64(st, 1, pc);
    sqlite3_bind_int64(st, 2, c->chosen_id);
    sqlite3_bind_int64(st, 3, c->rejected_id);
    bind_text(st, 4, c->dimension);
    sqlite3_bind_int(st, 5, c->rating);
    bind_safe(st, 6, c->chosen_safe);
    bind_safe(st, 7, c->rejected_safe);
    bind_text(st, 8, c->annotator);
    sqlite3_bind_int64(st, 9, c->iteration);
    bind_text(st, 10, c->split);
    bind_text(st, 11, c->created_at);
    if ((e = step_done(s, st, "inserting a comparison")) != ERR_OK) return e;
    *id = sqlite3_last_insert_rowid(s->db);
    return ERR_OK;
}

Err store_comparison_delete(Store *s, int64_t id) {
    sqlite3_stmt *st;
    Err e = stmt_get(s, ST_COMPARISON_DELETE, &st);
    if (e != ERR_OK) return e;
    sqlite3_bind_int64(st, 1, id);
    if ((e = step_done(s, st, "deleting a comparison")) != ERR_OK) return e;
    if (sqlite3_changes(s->db) == 0)
        return err_set(ERR_INPUT, "comparison %lld does not exist", (long long)id);
    return ERR_OK;
}

static int is_sft_source(const char *v) {
    return v && (strcmp(v, "human") == 0 || strcmp(v, "rs") == 0 || strcmp(v, "gatt") == 0);
}

Err store_sft_add(Store *s, const StoreSftExample *x, int64_t *id) {
    char *dialogue = NULL, *tags = NULL, *loss = NULL;
    sqlite3_stmt *st;
    Err e;
    if (!is_sft_source(x->source))
        return err_set(ERR_INPUT, "sft source must be \"human\", \"rs\" or \"gatt\"");
    if (x->iteration < 0) return err_set(ERR_INPUT, "iteration must be >= 0");
    if ((e = check_split(x->split)) != ERR_OK) return e;
    if ((e = dialogue_canon(x->dialogue, 0, &dialogue)) != ERR_OK) goto out;
    /* Alternating turns ending with the assistant: half of them are the assistant's. */
    json_t *d = json_loads(dialogue, 0, NULL);
    size_t n_assistant = json_array_size(d) / 2;
    json_decref(d);
    if ((e = loss_turns_canon(x->loss_turns, n_assistant, &loss)) != ERR_OK ||
        (e = tags_canon(x->tags, &tags)) != ERR_OK || (e = stmt_get(s, ST_SFT_INSERT, &st)) != ERR_OK)
        goto out;
    bind_text(st, 1, dialogue);
    bind_text(st, 2, x->system ? x->system : "");
    bind_text(st, 3, loss);
    bind_text(st, 4, x->source);
    sqlite3_bind_int64(st, 5, x->iteration);
    bind_text(st, 6, tags);
    bind_text(st, 7, x->split);
    bind_text(st, 8, x->created_at);
    if ((e = step_done(s, st, "inserting an SFT example")) != ERR_OK) goto out;
    *id = sqlite3_last_insert_rowid(s->db);
out:
    free(dialogue);
    free(tags);
    free(loss);
    return e;
}

Err store_score_put(Store *s, const StoreScore *sc) {
    sqlite3_stmt *st;
    Err e;
    int64_t prompt_id;
    if ((e = check_nonempty(sc->model, "score model")) != ERR_OK) return e;
    if (!isfinite(sc->score)) return err_set(ERR_INPUT, "score must be a finite number");
    if ((e = store_response_prompt(s, sc->response_id, &prompt_id)) != ERR_OK)
        return err_prefix(e, "score: ");
    if ((e = stmt_get(s, ST_SCORE_PUT, &st)) != ERR_OK) return e;
    sqlite3_bind_int64(st, 1, sc->response_id);
    bind_text(st, 2, sc->model);
    sqlite3_bind_double(st, 3, sc->score);
    return step_done(s, st, "storing a score");
}

Err store_run_begin(Store *s, const char *program, int64_t iteration, const char *config,
                    const char *inputs, int64_t *run_id) {
    sqlite3_stmt *st;
    Err e;
    if ((e = check_nonempty(program, "run program")) != ERR_OK) return e;
    if ((e = stmt_get(s, ST_RUN_BEGIN, &st)) != ERR_OK) return e;
    bind_text(st, 1, program);
    if (iteration >= 0) sqlite3_bind_int64(st, 2, iteration);
    else sqlite3_bind_null(st, 2);
    bind_text(st, 3, config);
    bind_text(st, 4, inputs);
    if ((e = step_done(s, st, "recording a run")) != ERR_OK) return e;
    *run_id = sqlite3_last_insert_rowid(s->db);
    return ERR_OK;
}

Err store_run_end(Store *s, int64_t run_id, const char *outputs, const char *status) {
    sqlite3_stmt *st;
    Err e;
    if (!status || (strcmp(status, "ok") != 0 && strcmp(status, "failed") != 0))
        return err_set(ERR_INPUT, "run status must be \"ok\" or \"failed\"");
    if ((e = stmt_get(s, ST_RUN_END, &st)) != ERR_OK) return e;
    sqlite3_bind_int64(st, 1, run_id);
    bind_text(st, 2, outputs);
    bind_text(st, 3, status);
    if ((e = step_done(s, st, "ending a run")) != ERR_OK) return e;
    if (sqlite3_changes(s->db) == 0) return err_set(ERR_INPUT, "run %lld does not exist", (long long)run_id);
    return ERR_OK;
}

Err store_metric_put(Store *s, int64_t run_id, int64_t step, const char *name, double value) {
    sqlite3_stmt *st;
    Err e;
    if ((e = check_nonempty(name, "metric name")) != ERR_OK) return e;
    if (isnan(value)) return err_set(ERR_INPUT, "metric %s: value is NaN", name);
    if ((e = stmt_get(s, ST_METRIC_PUT, &st)) != ERR_OK) return e;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, step);
    bind_text(st, 3, name);
    sqlite3_bind_double(st, 4, value);
    if ((e = step_done(s, st, "storing a metric")) != ERR_OK && e == ERR_INPUT)
        return err_set(ERR_INPUT, "metric %s: run %lld does not exist", name, (long long)run_id);
    return e;
}

/* ---- reading ---------------------------------------------------------------------------------- */

StoreFilter store_filter_any(void) {
    return (StoreFilter){.iteration = -1};
}

/* Named parameters shared by the walks; a statement uses the ones it needs. */
static void bind_filter(sqlite3_stmt *st, const StoreFilter *f) {
    StoreFilter any = store_filter_any();
    if (!f) f = &any;
    int i;
    if ((i = sqlite3_bind_parameter_index(st, ":split"))) bind_text(st, i, f->split);
    if ((i = sqlite3_bind_parameter_index(st, ":iteration"))) sqlite3_bind_int64(st, i, f->iteration);
    if ((i = sqlite3_bind_parameter_index(st, ":dimension"))) bind_text(st, i, f->dimension);
    if ((i = sqlite3_bind_parameter_index(st, ":model"))) bind_text(st, i, f->model);
    if ((i = sqlite3_bind_parameter_index(st, ":source"))) bind_text(st, i, f->source);
    if ((i = sqlite3_bind_parameter_index(st, ":risk"))) bind_text(st, i, f->risk);
    if ((i = sqlite3_bind_parameter_index(st, ":limit")))
        sqlite3_bind_int64(st, i, f->limit > 0 ? f->limit : -1);
}

typedef Err (*RowFn)(sqlite3_stmt *st, void *fn, void *ctx);

/* Prepare sql, bind the filter, call row(st, fn, ctx) per row. */
static Err walk(Store *s, const char *sql, const StoreFilter *f, RowFn row, void *fn, void *ctx) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return db_fail(s, "preparing a query");
    bind_filter(st, f);
    Err e = ERR_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((e = row(st, fn, ctx)) != ERR_OK) break;
    if (e == ERR_OK && rc != SQLITE_DONE) e = db_fail(s, "reading");
    sqlite3_finalize(st);
    return e;
}

#define PROMPT_COLS "p.id, p.dialogue, p.system, p.tags, p.split, p.source"

/* Fill p from the 6 columns at i (PROMPT_COLS). */
static void read_prompt(sqlite3_stmt *st, int i, StorePrompt *p) {
    p->id = sqlite3_column_int64(st, i);
    p->dialogue = col_text(st, i + 1);
    p->system = col_text(st, i + 2);
    p->tags = col_text(st, i + 3);
    p->split = col_text(st, i + 4);
    p->source = col_text(st, i + 5);
}

static Err prompt_row(sqlite3_stmt *st, void *fn, void *ctx) {
    StorePrompt p;
    read_prompt(st, 0, &p);
    return ((StorePromptFn)fn)(ctx, &p);
}

Err store_prompts_each(Store *s, const StoreFilter *f, StorePromptFn fn, void *ctx) {
    return walk(s,
                "SELECT " PROMPT_COLS " FROM prompts p WHERE (:split IS NULL OR p.split = :split)"
                " AND (:source IS NULL OR p.source = :source)"
                " AND (:risk IS NULL OR json_extract(p.tags, '$.risk') = :risk)"
                " ORDER BY p.id LIMIT :limit",
                f, prompt_row, (void *)fn, ctx);
}

static Err response_row(sqlite3_stmt *st, void *fn, void *ctx) {
    StoreResponseRow r;
    r.r.id = sqlite3_column_int64(st, 0);
    r.r.prompt_id = sqlite3_column_int64(st, 1);
    r.r.text = col_text(st, 2);
    r.r.model = col_text(st, 3);
    r.r.iteration = sqlite3_column_int64(st, 4);
    r.r.temperature = col_real(st, 5);
    r.r.top_p = col_real(st, 6);
    r.r.created_at = col_text(st, 7);
    read_prompt(st, 8, &r.prompt);
    return ((StoreResponseFn)fn)(ctx, &r);
}

Err store_responses_each(Store *s, const StoreFilter *f, StoreResponseFn fn, void *ctx) {
    return walk(s,
                "SELECT r.id, r.prompt_id, r.text, r.model, r.iteration, r.temperature, r.top_p,"
                " r.created_at, " PROMPT_COLS " FROM responses r JOIN prompts p ON p.id = r.prompt_id"
                " WHERE (:split IS NULL OR p.split = :split)"
                " AND (:iteration < 0 OR r.iteration = :iteration)"
                " AND (:model IS NULL OR r.model = :model) ORDER BY r.id LIMIT :limit",
                f, response_row, (void *)fn, ctx);
}

static int col_safe(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? STORE_SAFE_UNKNOWN : sqlite3_column_int(st, i);
}

static Err comparison_row(sqlite3_stmt *st, void *fn, void *ctx) {
    StoreComparisonRow r;
    r.c.id = sqlite3_column_int64(st, 0);
    r.c.prompt_id = sqlite3_column_int64(st, 1);
    r.c.chosen_id = sqlite3_column_int64(st, 2);
    r.c.rejected_id = sqlite3_column_int64(st, 3);
    r.c.dimension = col_text(st, 4);
    r.c.rating = sqlite3_column_int(st, 5);
    r.c.chosen_safe = col_safe(st, 6);
    r.c.rejected_safe = col_safe(st, 7);
    r.c.annotator = col_text(st, 8);
    r.c.iteration = sqlite3_column_int64(st, 9);
    r.c.split = col_text(st, 10);
    r.c.created_at = col_text(st, 11);
    r.chosen = col_text(st, 12);
    r.rejected = col_text(st, 13);
    r.chosen_model = col_text(st, 14);
    r.rejected_model = col_text(st, 15);
    read_prompt(st, 16, &r.prompt);
    return ((StoreComparisonFn)fn)(ctx, &r);
}

Err store_comparisons_each(Store *s, const StoreFilter *f, StoreComparisonFn fn, void *ctx) {
    return walk(s,
                "SELECT c.id, c.prompt_id, c.chosen_id, c.rejected_id, c.dimension, c.rating,"
                " c.chosen_safe, c.rejected_safe, c.annotator, c.iteration, c.split, c.created_at,"
                " ch.text, rj.text, ch.model, rj.model, " PROMPT_COLS
                " FROM comparisons c JOIN prompts p ON p.id = c.prompt_id"
                " JOIN responses ch ON ch.id = c.chosen_id JOIN responses rj ON rj.id = c.rejected_id"
                " WHERE (:split IS NULL OR c.split = :split)"
                " AND (:iteration < 0 OR c.iteration = :iteration)"
                " AND (:dimension IS NULL OR c.dimension = :dimension)"
                " AND (:model IS NULL OR ch.model = :model OR rj.model = :model)"
                " ORDER BY c.id LIMIT :limit",
                f, comparison_row, (void *)fn, ctx);
}

static Err sft_row(sqlite3_stmt *st, void *fn, void *ctx) {
    StoreSftExample x;
    x.id = sqlite3_column_int64(st, 0);
    x.dialogue = col_text(st, 1);
    x.system = col_text(st, 2);
    x.loss_turns = col_text(st, 3);
    x.source = col_text(st, 4);
    x.iteration = sqlite3_column_int64(st, 5);
    x.tags = col_text(st, 6);
    x.split = col_text(st, 7);
    x.created_at = col_text(st, 8);
    return ((StoreSftFn)fn)(ctx, &x);
}

Err store_sft_each(Store *s, const StoreFilter *f, StoreSftFn fn, void *ctx) {
    return walk(s,
                "SELECT id, dialogue, system, loss_turns, source, iteration, tags, split, created_at"
                " FROM sft_examples WHERE (:split IS NULL OR split = :split)"
                " AND (:iteration < 0 OR iteration = :iteration)"
                " AND (:source IS NULL OR source = :source) ORDER BY id LIMIT :limit",
                f, sft_row, (void *)fn, ctx);
}

static Err score_row(sqlite3_stmt *st, void *fn, void *ctx) {
    StoreScore sc = {sqlite3_column_int64(st, 0), col_text(st, 1), sqlite3_column_double(st, 2)};
    return ((StoreScoreFn)fn)(ctx, &sc);
}

Err store_scores_each(Store *s, const StoreFilter *f, StoreScoreFn fn, void *ctx) {
    return walk(s,
                "SELECT response_id, model, score FROM scores WHERE (:model IS NULL OR model = :model)"
                " ORDER BY response_id, model LIMIT :limit",
                f, score_row, (void *)fn, ctx);
}

static Err run_row(sqlite3_stmt *st, void *fn, void *ctx) {
    StoreRun r;
    r.id = sqlite3_column_int64(st, 0);
    r.program = col_text(st, 1);
    r.iteration = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 2);
    r.config = col_text(st, 3);
    r.inputs = col_text(st, 4);
    r.outputs = col_text(st, 5);
    r.started_at = col_text(st, 6);
    r.ended_at = col_text(st, 7);
    r.status = col_text(st, 8);
    return ((StoreRunFn)fn)(ctx, &r);
}

Err store_runs_each(Store *s, const StoreFilter *f, StoreRunFn fn, void *ctx) {
    return walk(s,
                "SELECT id, program, iteration, config, inputs, outputs, started_at, ended_at, status"
                " FROM runs WHERE (:iteration < 0 OR iteration = :iteration) ORDER BY id LIMIT :limit",
                f, run_row, (void *)fn, ctx);
}

static Err metric_row(sqlite3_stmt *st, void *fn, void *ctx) {
    StoreMetric m = {sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), col_text(st, 2),
                     sqlite3_column_double(st, 3)};
    return ((StoreMetricFn)fn)(ctx, &m);
}

Err store_metrics_each(Store *s, int64_t run_id, StoreMetricFn fn, void *ctx) {
    /* The run id travels in the iteration slot: the walk binds filters by name only. */
    StoreFilter f = store_filter_any();
    f.iteration = run_id;
    return walk(s,
                "SELECT run_id, step, name, value FROM metrics"
                " WHERE (:iteration <= 0 OR run_id = :iteration) ORDER BY run_id, name, step",
                &f, metric_row, (void *)fn, ctx);
}

static Err pair_row(sqlite3_stmt *st, void *fn, void *ctx) {
    StorePair p;
    read_prompt(st, 0, &p.prompt);
    p.a_id = sqlite3_column_int64(st, 6);
    p.a = col_text(st, 7);
    p.a_model = col_text(st, 8);
    p.b_id = sqlite3_column_int64(st, 9);
    p.b = col_text(st, 10);
    p.b_model = col_text(st, 11);
    return ((StorePairFn)fn)(ctx, &p);
}

Err store_pending_pairs_each(Store *s, const char *dimension, const StoreFilter *f, StorePairFn fn,
                             void *ctx) {
    if (dimension && !is_dimension(dimension))
        return err_set(ERR_INPUT, "dimension must be \"helpfulness\" or \"safety\"");
    StoreFilter g = f ? *f : store_filter_any();
    g.dimension = dimension;
    return walk(s,
                "SELECT " PROMPT_COLS ", a.id, a.text, a.model, b.id, b.text, b.model"
                " FROM responses a JOIN responses b ON b.prompt_id = a.prompt_id AND b.id > a.id"
                " JOIN prompts p ON p.id = a.prompt_id"
                " WHERE a.text <> b.text AND (:split IS NULL OR p.split = :split)"
                " AND (:iteration < 0 OR (a.iteration = :iteration AND b.iteration = :iteration))"
                " AND NOT EXISTS (SELECT 1 FROM comparisons c"
                "   WHERE (:dimension IS NULL OR c.dimension = :dimension)"
                "   AND ((c.chosen_id = a.id AND c.rejected_id = b.id)"
                "     OR (c.chosen_id = b.id AND c.rejected_id = a.id)))"
                " ORDER BY a.prompt_id, a.id, b.id LIMIT :limit",
                &g, pair_row, (void *)fn, ctx);
}

Err store_count(Store *s, const char *table, int64_t *n) {
    for (size_t i = 0; i < N_COUNTABLE; i++) {
        if (strcmp(table, COUNTABLE[i]) != 0) continue;
        sqlite3_stmt *st;
        int found;
        Err e = stmt_get(s, (StmtId)(ST_COUNT0 + i), &st);
        if (e != ERR_OK) return e;
        return step_int(s, st, "counting rows", n, &found);
    }
    return err_set(ERR_INPUT, "unknown table '%s'", table);
}
