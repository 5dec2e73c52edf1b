/*
 * rm_train eval — reward-model accuracy per rating, as Llama 2's Table 8, and score statistics.
 *
 * Every comparison of data.eval_split (of --kind, or both dimensions) is scored on both sides; a pair
 * is right when r(chosen) > r(rejected) (a tie counts half). Rows: each dimension, then the
 * dimension's pairs by safety bin (both responses safe, exactly one safe, both unsafe; pairs without
 * labels are in no bin), and by length (the chosen response has more bytes than the rejected one, or
 * not: a model that only learned "shorter wins" fails the first); with --by TAG, by the value of the
 * prompt's tag TAG (rows "helpfulness: category fact", in the order of the values; a prompt without
 * the tag counts under "-"). Columns: the rating — significantly better (3), better (2), slightly
 * better (1), negligibly better / unsure (0) — and all of them.
 *
 * Metrics (step 0 of the eval run in the store): acc.<row>.<column> and n.<row>.<column> with row
 * "helpfulness", "safety.both_safe", "helpfulness.chosen_longer", "helpfulness.category.fact" (--by
 * category), ... and column "significantly_better",
 * "better", "slightly_better", "negligibly_better", "avg"; per dimension chosen_mean, rejected_mean,
 * gap_mean (mean r_c - r_r), gap_std; over every score: score_mean, score_std, score_min, score_max;
 * and sequences_per_s.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reward.h"
#include "rm_train.h"
#include "trainlog.h"
#include "util.h"

enum { ROW_ALL, ROW_BOTH_SAFE, ROW_ONE_SAFE, ROW_BOTH_UNSAFE, ROW_LONGER, ROW_SHORTER, N_ROWS };
static const char *const ROW_KEY[N_ROWS] = {"", ".both_safe", ".one_safe", ".both_unsafe", ".chosen_longer",
                                            ".chosen_shorter"};
static const char *const ROW_LABEL[N_ROWS] = {"", ": both safe", ": one safe", ": both unsafe", ": chosen longer",
                                              ": chosen shorter"};
/* Columns in Table 8's order: rating 3, 2, 1, 0, then all. */
static const char *const COL_KEY[5] = {"significantly_better", "better", "slightly_better", "negligibly_better", "avg"};

typedef struct {
    double right[2][N_ROWS][5];
    int64_t n[2][N_ROWS][5];
    double sum_c[2], sum_r[2], sum_gap[2], sum_gap2[2];
    int64_t pairs[2];
    /* --by: the distinct tag values, sorted, and their cells */
    const char *by;
    char **groups;
    int n_groups;
    double (*gright)[2][5];
    int64_t (*gn)[2][5];
} Table;

static void count_cells(double right_cells[5], int64_t n_cells[5], int rating, double right) {
    int cols[2] = {3 - rating, 4};
    for (int k = 0; k < 2; k++) {
        right_cells[cols[k]] += right;
        n_cells[cols[k]]++;
    }
}

static void count(Table *tb, int dim, int row, int rating, double right) {
    count_cells(tb->right[dim][row], tb->n[dim][row], rating, right);
}

static const char *group_of(const RmPair *e) { return e->group ? e->group : "-"; }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The sorted distinct values of the pairs' groups. */
static void collect_groups(Table *tb, const RmPairs *p) {
    tb->groups = xmalloc(sizeof *tb->groups * (size_t)(p->n ? p->n : 1));
    for (int64_t i = 0; i < p->n; i++) tb->groups[i] = (char *)group_of(&p->v[i]);
    qsort(tb->groups, (size_t)p->n, sizeof *tb->groups, cmp_str);
    int k = 0;
    for (int64_t i = 0; i < p->n; i++)
        if (k == 0 || strcmp(tb->groups[k - 1], tb->groups[i]) != 0) tb->groups[k++] = tb->groups[i];
    tb->n_groups = k;
    tb->gright = xcalloc((size_t)(k ? k : 1), sizeof *tb->gright);
    tb->gn = xcalloc((size_t)(k ? k : 1), sizeof *tb->gn);
}

static void table_free(Table *tb) {
    free(tb->groups);
    free(tb->gright);
    free(tb->gn);
}

static void tabulate(Table *tb, const RmPairs *p, const float *scores) {
    memset(tb, 0, sizeof *tb);
    tb->by = p->by;
    if (tb->by) collect_groups(tb, p);
    for (int64_t i = 0; i < p->n; i++) {
        const RmPair *e = &p->v[i];
        float rc = scores[2 * i], rr = scores[2 * i + 1];
        double right = rc > rr ? 1.0 : rc == rr ? 0.5 : 0.0;
        int d = e->safety;
        count(tb, d, ROW_ALL, e->rating, right);
        if (tb->by) {
            const char *g = group_of(e);
            char **hit = bsearch(&g, tb->groups, (size_t)tb->n_groups, sizeof *tb->groups, cmp_str);
            ASSERT(hit);
            count_cells(tb->gright[hit - tb->groups][d], tb->gn[hit - tb->groups][d], e->rating, right);
        }
        if (e->chosen_safe != STORE_SAFE_UNKNOWN && e->rejected_safe != STORE_SAFE_UNKNOWN) {
            int safe = (e->chosen_safe == 1) + (e->rejected_safe == 1);
            count(tb, d, safe == 2 ? ROW_BOTH_SAFE : safe == 1 ? ROW_ONE_SAFE : ROW_BOTH_UNSAFE, e->rating, right);
        }
        count(tb, d, e->chosen_longer ? ROW_LONGER : ROW_SHORTER, e->rating, right);
        double gap = (double)rc - rr;
        tb->sum_c[d] += rc;
        tb->sum_r[d] += rr;
        tb->sum_gap[d] += gap;
        tb->sum_gap2[d] += gap * gap;
        tb->pairs[d]++;
    }
}

static const char *const DIM[2] = {"helpfulness", "safety"};

static void print_row(FILE *f, int lw, const char *label, const double right[5], const int64_t n[5]) {
    static const int width[5] = {13, 8, 8, 13, 8};
    fprintf(f, "%-*s", lw, label);
    for (int c = 0; c < 5; c++) {
        if (n[c]) fprintf(f, " %*.1f", width[c], 100.0 * right[c] / (double)n[c]);
        else fprintf(f, " %*s", width[c], "-");
    }
    fprintf(f, " %7" PRId64 "\n", n[4]);
}

static void print_table(const Table *tb, FILE *f) {
    int lw = 30; /* the label column: wide enough for the longest --by label */
    for (int g = 0; g < tb->n_groups; g++) {
        int w = (int)(strlen("helpfulness: ") + strlen(tb->by) + 1 + strlen(tb->groups[g]));
        if (w > lw) lw = w;
    }
    fprintf(f, "%-*s %13s %8s %8s %13s %8s %7s\n", lw, "", "Significantly", "", "Slightly", "Negligibly", "", "");
    fprintf(f, "%-*s %13s %8s %8s %13s %8s %7s\n", lw, "accuracy (%)", "Better", "Better", "Better", "Better/Unsure",
            "Avg", "pairs");
    for (int d = 0; d < 2; d++) {
        for (int r = 0; r < N_ROWS; r++) {
            if (tb->n[d][r][4] == 0) continue;
            char label[64];
            snprintf(label, sizeof label, "%s%s", DIM[d], ROW_LABEL[r]);
            print_row(f, lw, label, tb->right[d][r], tb->n[d][r]);
        }
        for (int g = 0; g < tb->n_groups; g++) {
            if (tb->gn[g][d][4] == 0) continue;
            char *label = xasprintf("%s: %s %s", DIM[d], tb->by, tb->groups[g]);
            print_row(f, lw, label, tb->gright[g][d], tb->gn[g][d]);
            free(label);
        }
    }
}

static Err put_metrics(Store *db, int64_t run_id, const Table *tb, const float *scores, int64_t ns, double rate) {
    char name[128];
    Err rc = ERR_OK;
#define PUT(v) if (!rc) rc = store_metric_put(db, run_id, 0, name, (v))
    for (int d = 0; d < 2; d++) {
        for (int r = 0; r < N_ROWS; r++)
            for (int c = 0; c < 5; c++) {
                if (tb->n[d][r][c] == 0) continue;
                snprintf(name, sizeof name, "acc.%s%s.%s", DIM[d], ROW_KEY[r], COL_KEY[c]);
                PUT(tb->right[d][r][c] / (double)tb->n[d][r][c]);
                snprintf(name, sizeof name, "n.%s%s.%s", DIM[d], ROW_KEY[r], COL_KEY[c]);
                PUT((double)tb->n[d][r][c]);
            }
        for (int g = 0; g < tb->n_groups && !rc; g++)
            for (int c = 0; c < 5 && !rc; c++) {
                if (tb->gn[g][d][c] == 0) continue;
                char *key = xasprintf("acc.%s.%s.%s.%s", DIM[d], tb->by, tb->groups[g], COL_KEY[c]);
                rc = store_metric_put(db, run_id, 0, key, tb->gright[g][d][c] / (double)tb->gn[g][d][c]);
                free(key);
                key = xasprintf("n.%s.%s.%s.%s", DIM[d], tb->by, tb->groups[g], COL_KEY[c]);
                if (!rc) rc = store_metric_put(db, run_id, 0, key, (double)tb->gn[g][d][c]);
                free(key);
            }
        if (tb->pairs[d] == 0) continue;
        double n = (double)tb->pairs[d], mean = tb->sum_gap[d] / n;
        snprintf(name, sizeof name, "%s.chosen_mean", DIM[d]);
        PUT(tb->sum_c[d] / n);
        snprintf(name, sizeof name, "%s.rejected_mean", DIM[d]);
        PUT(tb->sum_r[d] / n);
        snprintf(name, sizeof name, "%s.gap_mean", DIM[d]);
        PUT(mean);
        snprintf(name, sizeof name, "%s.gap_std", DIM[d]);
        PUT(sqrt(fmax(tb->sum_gap2[d] / n - mean * mean, 0.0)));
    }
    double s = 0, s2 = 0, lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < ns; i++) {
        s += scores[i];
        s2 += (double)scores[i] * scores[i];
        lo = fmin(lo, scores[i]);
        hi = fmax(hi, scores[i]);
    }
    double mean = s / (double)ns;
    snprintf(name, sizeof name, "score_mean");
    PUT(mean);
    snprintf(name, sizeof name, "score_std");
    PUT(sqrt(fmax(s2 / (double)ns - mean * mean, 0.0)));
    snprintf(name, sizeof name, "score_min");
    PUT(lo);
    snprintf(name, sizeof name, "score_max");
    PUT(hi);
    snprintf(name, sizeof name, "sequences_per_s");
    PUT(rate);
#undef PUT
    return rc;
}

int rm_eval_run(const RmOpts *o, RmCfg *c) {
    RewardModel rm;
    Store *db = NULL;
    RmPairs pairs = {.by = o->by};
    Table tb = {0};
    float *scores = NULL;
    const int32_t **ids = NULL;
    int *lens = NULL;
    int64_t run_id = 0;
    char *config_text = config_dump_string(RM_SCHEMA, c);
    bool have_rm = false;
    int rc = reward_load(&rm, o->cli.model, (int)c->score_batch);
    if (rc) goto done;
    have_rm = true;
    if ((rc = store_open(&db, o->cli.db))) goto done;
    for (int d = 0; d < 2 && !rc; d++) {
        const char *dim = d ? "safety" : "helpfulness";
        if (!o->kind || strcmp(o->kind, dim) == 0) rc = rm_pairs_load(&pairs, db, &rm.tok, c->eval_split, dim, c->iteration);
    }
    if (rc) goto done;
    if (pairs.n == 0) {
        rc = err_set(ERR_INPUT, "%s: no comparisons in split '%s' to evaluate", o->cli.db, c->eval_split);
        goto done;
    }
    const int64_t ns = 2 * pairs.n;
    if (ns > INT32_MAX) {
        rc = err_set(ERR_INPUT, "%s: too many comparisons to evaluate at once", o->cli.db);
        goto done;
    }
    ids = xmalloc(sizeof *ids * (size_t)ns);
    lens = xmalloc(sizeof *lens * (size_t)ns);
    scores = xmalloc(sizeof *scores * (size_t)ns);
    for (int64_t i = 0; i < pairs.n; i++)
        for (int s = 0; s < 2; s++) {
            ids[2 * i + s] = pairs.v[i].ids[s].ids;
            lens[2 * i + s] = (int)pairs.v[i].ids[s].n;
        }
    double t0 = trainlog_now();
    if ((rc = reward_score_tokens(&rm, ids, lens, (int)ns, scores))) goto done;
    double secs = trainlog_now() - t0, rate = secs > 0 ? (double)ns / secs : 0;

    tabulate(&tb, &pairs, scores);
    printf("%s eval: %s on split '%s', %" PRId64 " comparisons\n", PROG, o->cli.model, c->eval_split, pairs.n);
    print_table(&tb, stdout);
    fprintf(stderr, PROG ": scored %" PRId64 " sequences in %.2f s (%.1f sequences/s)\n", ns, secs, rate);

    char *ins = rm_inputs_json(o, o->cli.model);
    rc = store_run_begin(db, PROG " eval", o->cli.iteration, config_text, ins, &run_id);
    free(ins);
    if (rc) goto done;
    rc = store_begin(db);
    if (!rc) {
        rc = put_metrics(db, run_id, &tb, scores, ns, rate);
        if (rc) store_rollback(db);
        else rc = store_commit(db);
    }
    Err e2 = store_run_end(db, run_id, NULL, rc ? "failed" : "ok");
    if (!rc) rc = e2;

done:
    if (rc) fprintf(stderr, PROG ": %s\n", err_msg());
    free(ids);
    free(lens);
    free(scores);
    table_free(&tb);
    rm_pairs_free(&pairs);
    if (db) store_close(db);
    if (have_rm) reward_free(&rm);
    free(config_text);
    return rc;
}
