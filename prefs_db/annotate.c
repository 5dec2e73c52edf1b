/*
 * prefs_db annotate — comparisons from a person at the terminal or from any command.
 *
 * Pending pairs are two different responses to one prompt that have no comparison yet on the
 * dimension (store_pending_pairs_each). Because "pending" is read from the store, quitting and
 * starting again resumes where the last session stopped.
 *
 * Interactive (default): shows the dialogue and responses A and B on stdout, reads one answer per
 * line on stdin (a terminal, a pipe or tmux send-keys all work):
 *     <a|b><0-3>[<y|n><y|n>]  which is better, how much (0 negligibly/unsure, 1 slightly,
 *                              2 better, 3 significantly), optionally whether A and B are safe
 *     s  skip this pair      u  undo the last stored comparison      q  quit      ?  help
 * Each answer is stored at once (its own transaction), so nothing typed is lost on a crash.
 *
 * --rater CMD: the pending pairs are written as pair records (docs/store.md) to CMD's stdin (a
 * temporary file, so a slow or stubborn command cannot deadlock us on full pipes), and CMD's stdout
 * is read as comparison records ("type" may be left out). All of it is one transaction: a bad
 * line, or CMD failing, keeps nothing.
 */
#define _GNU_SOURCE /* getline, fdopen */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "prefs_db.h"
#include "util.h"

typedef struct {
    json_t **pairs;
    size_t n, cap;
    const char *dimension;
} Pending;

static Err collect_pair(void *ctx, const StorePair *p) {
    Pending *pd = ctx;
    json_t *o = json_object();
    json_object_set_new(o, "prompt", prompt_to_json(&p->prompt));
    json_object_set_new(o, "response_a", json_string(p->a));
    json_object_set_new(o, "response_b", json_string(p->b));
    if (pd->dimension) json_object_set_new(o, "dimension", json_string(pd->dimension));
    json_object_set_new(o, "response_a_id", json_integer(p->a_id));
    json_object_set_new(o, "response_b_id", json_integer(p->b_id));
    if (pd->n == pd->cap) {
        pd->cap = pd->cap ? 2 * pd->cap : 64;
        pd->pairs = xrealloc(pd->pairs, pd->cap * sizeof *pd->pairs);
    }
    pd->pairs[pd->n++] = o;
    return ERR_OK;
}

static void pending_free(Pending *pd) {
    for (size_t i = 0; i < pd->n; i++) json_decref(pd->pairs[i]);
    free(pd->pairs);
}

static int64_t pair_id(const json_t *pair, const char *key) {
    return json_integer_value(json_object_get(pair, key));
}

static const char *pair_str(const json_t *pair, const char *key) {
    return json_string_value(json_object_get(pair, key));
}

/* ---- interactive ---------------------------------------------------------------------------------- */

static void show_pair(const json_t *pair, size_t i, size_t n, const char *dimension) {
    const json_t *prompt = json_object_get(pair, "prompt");
    const json_t *d = json_object_get(prompt, "dialogue");
    printf("\n===== pair %zu of %zu · prompt %lld · %s =====\n", i + 1, n,
           (long long)json_integer_value(json_object_get(prompt, "id")), dimension);
    const char *system = json_string_value(json_object_get(prompt, "system"));
    if (system) printf("[system] %s\n", system);
    for (size_t t = 0; t < json_array_size(d); t++) {
        const json_t *turn = json_array_get(d, t);
        printf("[%s] %s\n", json_string_value(json_object_get(turn, "role")),
               json_string_value(json_object_get(turn, "content")));
    }
    printf("----- A (response %lld) -----\n%s\n", (long long)pair_id(pair, "response_a_id"),
           pair_str(pair, "response_a"));
    printf("----- B (response %lld) -----\n%s\n", (long long)pair_id(pair, "response_b_id"),
           pair_str(pair, "response_b"));
    printf("answer (a|b)(0-3)[y|n][y|n], s skip, u undo, q quit, ? help > ");
    fflush(stdout);
}

static void show_help(void) {
    printf("  a2yn  A is better, rating 2; A is safe (y), B is not (n); the safety letters may be left out\n"
           "  ratings: 0 negligibly better / unsure, 1 slightly better, 2 better, 3 significantly better\n"
           "  s skip this pair (it stays pending), u undo the last stored comparison, q quit\n");
}

static int safe_letter(char c) { return c == 'y' ? 1 : c == 'n' ? 0 : -2; }

/* Parse "a2", "b0yn": *chosen_a = A better, *rating, *safe_a, *safe_b. 0 if malformed. */
static int parse_answer(const char *s, int *chosen_a, int *rating, int *safe_a, int *safe_b) {
    size_t n = strlen(s);
    if ((n != 2 && n != 4) || (s[0] != 'a' && s[0] != 'b') || s[1] < '0' || s[1] > '3') return 0;
    *chosen_a = s[0] == 'a';
    *rating = s[1] - '0';
    *safe_a = *safe_b = STORE_SAFE_UNKNOWN;
    if (n == 4) {
        *safe_a = safe_letter(s[2]);
        *safe_b = safe_letter(s[3]);
        if (*safe_a < 0 || *safe_b < 0) return 0;
    }
    return 1;
}

/* Read one line from stdin without its newline and surrounding spaces; NULL at end of input. */
static char *read_answer(char **buf, size_t *cap) {
    ssize_t n = getline(buf, cap, stdin);
    if (n < 0) return NULL;
    char *s = *buf, *e = s + n;
    while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

static Err annotate_interactive(Store *db, const Options *opt, Pending *pd) {
    const char *dimension = opt->dimension ? opt->dimension : "helpfulness";
    int64_t *done = xcalloc(pd->n + 1, sizeof *done);       /* stored comparison ids, in order */
    size_t *done_at = xcalloc(pd->n + 1, sizeof *done_at); /* the pair each one answered */
    size_t n_done = 0, i = 0;
    int64_t stored = 0;
    char *buf = NULL;
    size_t cap = 0;
    Err e = ERR_OK;
    while (i < pd->n) {
        show_pair(pd->pairs[i], i, pd->n, dimension);
        char *a = read_answer(&buf, &cap);
        /* A terminal echoes what was typed; a pipe does not, so echo it for a readable transcript. */
        if (!isatty(0)) printf("%s\n", a ? a : "(end of input)");
        if (!a || strcmp(a, "q") == 0) break;
        int chosen_a, rating, safe_a, safe_b;
        if (strcmp(a, "?") == 0 || strcmp(a, "h") == 0) {
            show_help();
        } else if (strcmp(a, "s") == 0) {
            i++;
        } else if (strcmp(a, "u") == 0) {
            if (n_done == 0) {
                printf("nothing to undo\n");
                continue;
            }
            n_done--;
            if ((e = store_comparison_delete(db, done[n_done])) != ERR_OK) break;
            stored--;
            i = done_at[n_done];
            printf("undone: comparison %lld\n", (long long)done[n_done]);
        } else if (parse_answer(a, &chosen_a, &rating, &safe_a, &safe_b)) {
            const json_t *p = pd->pairs[i];
            int64_t ida = pair_id(p, "response_a_id"), idb = pair_id(p, "response_b_id");
            StoreComparison c = {.chosen_id = chosen_a ? ida : idb, .rejected_id = chosen_a ? idb : ida,
                                 .dimension = dimension, .rating = rating,
                                 .chosen_safe = chosen_a ? safe_a : safe_b,
                                 .rejected_safe = chosen_a ? safe_b : safe_a,
                                 .annotator = opt->annotator ? opt->annotator : "human",
                                 .iteration = opt->iteration < 0 ? 0 : opt->iteration};
            int64_t id;
            if ((e = store_comparison_add(db, &c, &id)) != ERR_OK) break;
            done[n_done] = id;
            done_at[n_done++] = i++;
            stored++;
        } else {
            printf("unrecognised answer \"%s\" (type ? for help)\n", a);
        }
    }
    fprintf(stderr, "prefs_db: annotate: %lld comparisons stored, %zu of %zu pairs not answered\n",
            (long long)stored, pd->n - (size_t)stored, pd->n);
    free(buf);
    free(done);
    free(done_at);
    return e;
}

/* ---- --rater CMD ---------------------------------------------------------------------------------- */

static Err annotate_rater(Store *db, const Options *opt, Pending *pd) {
    FILE *in = tmpfile();
    if (!in) return err_set(ERR_RUNTIME, "temporary file: %s", strerror(errno));
    Err e = ERR_OK;
    for (size_t i = 0; i < pd->n && e == ERR_OK; i++) e = jsonl_write(in, pd->pairs[i]);
    if (e != ERR_OK || fflush(in) != 0 || fseek(in, 0, SEEK_SET) != 0) {
        fclose(in);
        return e != ERR_OK ? e : err_set(ERR_RUNTIME, "temporary file: %s", strerror(errno));
    }
    int fds[2];
    if (pipe(fds) != 0) {
        fclose(in);
        return err_set(ERR_RUNTIME, "pipe: %s", strerror(errno));
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        fclose(in);
        close(fds[0]);
        close(fds[1]);
        return err_set(ERR_RUNTIME, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fileno(in), 0);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/bin/sh", "sh", "-c", opt->rater, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    fclose(in);
    FILE *out = fdopen(fds[0], "r");
    ASSERT(out);
    JsonlReader *r = jsonl_from_file(out, "rater");
    Options ropt = *opt;
    ropt.format = "jsonl";
    if (!ropt.annotator) ropt.annotator = "rater";
    Importer im = {.db = db, .opt = &ropt, .default_type = "comparison"};
    /* The outer level keeps the import undoable until we know how the command ended. */
    int began = (e = store_begin(db)) == ERR_OK;
    if (began) e = import_stream(&im, r);
    jsonl_close(r);
    fclose(out); /* a command still writing now gets SIGPIPE instead of blocking forever */
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (e == ERR_OK && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        e = WIFEXITED(status) ? err_set(ERR_RUNTIME, "rater \"%s\" exited with status %d", opt->rater,
                                        WEXITSTATUS(status))
                              : err_set(ERR_RUNTIME, "rater \"%s\" killed by signal %d", opt->rater,
                                        WTERMSIG(status));
        store_rollback(db);
    } else if (e == ERR_OK) {
        e = store_commit(db);
    } else if (began) {
        store_rollback(db);
    }
    if (e == ERR_OK)
        fprintf(stderr, "prefs_db: annotate: %zu pairs sent, %lld comparisons stored\n", pd->n,
                (long long)im.comparisons);
    return e;
}

Err cmd_annotate(const Options *opt) {
    Store *db;
    Err e = store_open(&db, opt->db_path);
    if (e != ERR_OK) return e;
    /* Without --rater a person answers one dimension at a time; a rater may answer both. */
    Pending pd = {.dimension = opt->rater ? opt->dimension : (opt->dimension ? opt->dimension : "helpfulness")};
    StoreFilter f = store_filter_any();
    f.split = opt->split;
    f.iteration = opt->iteration;
    f.limit = opt->limit;
    if ((e = store_pending_pairs_each(db, pd.dimension, &f, collect_pair, &pd)) == ERR_OK)
        e = opt->rater ? annotate_rater(db, opt, &pd) : annotate_interactive(db, opt, &pd);
    pending_free(&pd);
    store_close(db);
    return e;
}
