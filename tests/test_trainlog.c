/*
 * trainlog: the metrics TSV and the store's metrics table get the same values, a resumed log keeps
 * exactly the lines up to the resume step, an unwritable directory is an error, SIGINT/SIGTERM set
 * the stop flag instead of killing, and progress lines carry rate and ETA.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"
#include "trainlog.h"
#include "util.h"

static char dir[64];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/test_trainlog.XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s", path);
    char *buf = xcalloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

typedef struct {
    int n;
    double sum;
} Sum;

static Err add_metric(void *ctx, const StoreMetric *m) {
    Sum *s = ctx;
    s->n++;
    s->sum += m->value;
    return ERR_OK;
}

START_TEST(test_tsv_and_store) {
    char sub[128], db_path[160], tsv[192];
    snprintf(sub, sizeof sub, "%s/a/b", dir); /* created on open */
    snprintf(db_path, sizeof db_path, "%s/prefs.db", dir);
    snprintf(tsv, sizeof tsv, "%s/metrics.tsv", sub);
    Store *db;
    ck_assert(store_open(&db, db_path) == ERR_OK);
    int64_t run;
    ck_assert(store_run_begin(db, "test", -1, NULL, NULL, &run) == ERR_OK);
    TrainLog log;
    ck_assert_msg(trainlog_open(&log, sub, -1, db, run) == ERR_OK, "%s", err_msg());
    for (int step = 1; step <= 4; step++) {
        ck_assert(trainlog_metric(&log, step, "loss", 1.0 / step) == ERR_OK);
        ck_assert(trainlog_metric(&log, step, "lr", 0.5) == ERR_OK);
    }
    char *text = slurp(tsv); /* flushed as written: readable before close */
    ck_assert_str_eq(text, "step\tname\tvalue\n1\tloss\t1\n1\tlr\t0.5\n2\tloss\t0.5\n2\tlr\t0.5\n"
                           "3\tloss\t0.333333333\n3\tlr\t0.5\n4\tloss\t0.25\n4\tlr\t0.5\n");
    free(text);
    trainlog_close(&log);
    Sum s = {0, 0};
    ck_assert(store_metrics_each(db, run, add_metric, &s) == ERR_OK);
    ck_assert_int_eq(s.n, 8);
    ck_assert(s.sum > 4.08 && s.sum < 4.09); /* 1 + .5 + .333 + .25 + 4 * .5 */
    store_close(db);

    /* resuming from step 2 drops what the interrupted run logged after its checkpoint */
    ck_assert(trainlog_open(&log, sub, 2, NULL, 0) == ERR_OK);
    ck_assert(trainlog_metric(&log, 3, "loss", 0.125) == ERR_OK);
    trainlog_close(&log);
    text = slurp(tsv);
    ck_assert_str_eq(text, "step\tname\tvalue\n1\tloss\t1\n1\tlr\t0.5\n2\tloss\t0.5\n2\tlr\t0.5\n3\tloss\t0.125\n");
    free(text);

    /* a new run (resume_step < 0) starts the file over */
    ck_assert(trainlog_open(&log, sub, -1, NULL, 0) == ERR_OK);
    trainlog_close(&log);
    text = slurp(tsv);
    ck_assert_str_eq(text, "step\tname\tvalue\n");
    free(text);
}
END_TEST

START_TEST(test_unwritable_dir) {
    char bad[128];
    snprintf(bad, sizeof bad, "%s/file", dir);
    FILE *f = fopen(bad, "w");
    ck_assert(f);
    fclose(f);
    char sub[160];
    snprintf(sub, sizeof sub, "%s/under", bad); /* a directory below a regular file */
    TrainLog log;
    ck_assert_int_eq(trainlog_open(&log, sub, -1, NULL, 0), ERR_RUNTIME);
    ck_assert_msg(strstr(err_msg(), "file/under") != NULL, "%s", err_msg());
}
END_TEST

START_TEST(test_signals_set_the_flag) {
    ck_assert(!trainlog_stop_requested());
    trainlog_catch_signals();
    ck_assert_int_eq(raise(SIGTERM), 0); /* would end the test binary without the handler */
    ck_assert(trainlog_stop_requested());
}
END_TEST

START_TEST(test_sigint_sets_the_flag) {
    trainlog_catch_signals();
    ck_assert_int_eq(raise(SIGINT), 0);
    ck_assert(trainlog_stop_requested());
}
END_TEST

START_TEST(test_progress_lines) {
    char path[128];
    snprintf(path, sizeof path, "%s/err.txt", dir);
    fflush(stderr);
    int saved = dup(2);
    ck_assert(freopen(path, "w", stderr) != NULL);
    Progress p;
    trainlog_progress_start(&p, "prog", 0, 4, 0.0);
    for (int s = 1; s <= 4; s++) trainlog_progress(&p, s, 100, 2.5, 1e-3);
    trainlog_progress_end(&p, 4);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *text = slurp(path);
    /* not a terminal: plain lines, the last one at the final step, then the summary */
    ck_assert_msg(strstr(text, "prog: step 4/4 loss 2.5000 lr 1.00e-03") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "tok/s") != NULL && strstr(text, "ETA 0s") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "prog: 4 steps, 400 tokens in") != NULL, "%s", text);
    ck_assert_int_eq(p.tokens, 400);
    free(text);
}
END_TEST

int main(void) {
    Suite *s = suite_create("trainlog");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_tsv_and_store);
    tcase_add_test(tc, test_unwritable_dir);
    tcase_add_test(tc, test_signals_set_the_flag);
    tcase_add_test(tc, test_sigint_sets_the_flag);
    tcase_add_test(tc, test_progress_lines);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
