/* rewardcmd: the records a reward command reads, the two forms of its answer, every way its output can
 * be wrong, a failing command, and no temporary file left behind. */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rewardcmd.h"
#include "testutil.h"
#include "util.h"

/* Three answers to two prompts, the second prompt with a system prompt. */
typedef struct {
    json_t *d[3];
    const char *sys[3], *txt[3];
} Batch;

static void batch_init(Batch *b) {
    b->d[0] = json_loads("[{\"role\":\"user\",\"content\":\"What colour is the ball?\"}]", 0, NULL);
    b->d[1] = json_incref(b->d[0]);
    b->d[2] = json_loads("[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello.\"},"
                         "{\"role\":\"user\",\"content\":\"Sum 2 and 3.\"}]", 0, NULL);
    ck_assert(b->d[0] && b->d[2]);
    b->sys[0] = NULL;
    b->sys[1] = "";
    b->sys[2] = "Always answer as a pirate.";
    b->txt[0] = "The ball is red.";
    b->txt[1] = "Red";
    b->txt[2] = "Arr, \"5\".";
}

static void batch_free(Batch *b) {
    for (int i = 0; i < 3; i++) json_decref(b->d[i]);
}

static Err run3(const char *cmd, float out[3]) {
    Batch b;
    batch_init(&b);
    Err rc = reward_cmd_score(cmd, (const json_t *const *)b.d, b.sys, b.txt, 3, out);
    batch_free(&b);
    return rc;
}

/* A private TMPDIR, to see that the command's files are gone afterwards. */
static char tmpdir[64];

static void setup(void) {
    strcpy(tmpdir, "/tmp/test_rewardcmd_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    setenv("TMPDIR", tmpdir, 1);
}

static void teardown(void) {
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int left = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) left++;
    closedir(d);
    rmdir(tmpdir);
    ck_assert_msg(left == 0, "%d temporary files left in %s", left, tmpdir);
}

START_TEST(test_records_and_numbers) {
    /* the command sees one response record per answer, in order: it echoes them to a file */
    char *copy = xasprintf("%s/seen.jsonl", tmpdir);
    char *cmd = xasprintf("tee '%s' | awk '{ print NR * 1.5 }'", copy);
    float r[3] = {0};
    ck_assert_int_eq(run3(cmd, r), ERR_OK);
    ck_assert_float_eq(r[0], 1.5f);
    ck_assert_float_eq(r[1], 3.0f);
    ck_assert_float_eq(r[2], 4.5f);
    FILE *f = fopen(copy, "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    const char *want[3] = {
        "{\"type\":\"response\",\"prompt\":{\"dialogue\":[{\"role\":\"user\",\"content\":\"What colour is the ball?\"}]},"
        "\"text\":\"The ball is red.\"}\n",
        /* an empty system prompt is none */
        "{\"type\":\"response\",\"prompt\":{\"dialogue\":[{\"role\":\"user\",\"content\":\"What colour is the ball?\"}]},"
        "\"text\":\"Red\"}\n",
        "{\"type\":\"response\",\"prompt\":{\"dialogue\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\","
        "\"content\":\"Hello.\"},{\"role\":\"user\",\"content\":\"Sum 2 and 3.\"}],\"system\":\"Always answer as a pirate.\"},"
        "\"text\":\"Arr, \\\"5\\\".\"}\n",
    };
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
        ck_assert_str_eq(line, want[i]);
    }
    ck_assert_ptr_null(fgets(line, sizeof line, f));
    fclose(f);
    unlink(copy);
    free(copy);
    free(cmd);
}
END_TEST

START_TEST(test_reward_objects) {
    /* {"reward": x} with other fields, a bare number, blank lines skipped; negative and exponent forms */
    float r[3] = {0};
    ck_assert_int_eq(run3("cat >/dev/null; printf '{\"note\":\"ok\",\"reward\":-0.25}\\n\\n7\\n{\"reward\":2e-3}\\n'", r),
                     ERR_OK);
    ck_assert_float_eq(r[0], -0.25f);
    ck_assert_float_eq(r[1], 7.0f);
    ck_assert_float_eq_tol(r[2], 0.002f, 1e-9f);
    /* no answer to score: the command is not run */
    ck_assert_int_eq(reward_cmd_score("exit 9", NULL, NULL, NULL, 0, r), ERR_OK);
}
END_TEST

START_TEST(test_bad_output) {
    float r[3];
    ck_assert_int_eq(run3("cat >/dev/null; printf '1\\n2\\n'", r), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "2 rewards for 3 answers"), "%s", err_msg());
    ck_assert_int_eq(run3("cat >/dev/null; printf '1\\n2\\n3\\n4\\n'", r), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "4 rewards for 3 answers"), "%s", err_msg());
    ck_assert_int_eq(run3("cat >/dev/null; printf '1\\n{\"score\":2}\\n3\\n'", r), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "output line 2: expected a number or an object with a numeric \"reward\""), "%s",
                  err_msg());
    ck_assert_int_eq(run3("cat >/dev/null; printf '1\\n2\\n\"3\"\\n'", r), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "output line 3"), "%s", err_msg());
    ck_assert_int_eq(run3("cat >/dev/null; printf '1\\nnope\\n3\\n'", r), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "reward command: output line 2: not JSON"), "%s", err_msg());
    ck_assert_int_eq(run3("cat >/dev/null; printf '1\\n1e39\\n3\\n'", r), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "output line 2: reward 1e+39 is not a finite float"), "%s", err_msg());
}
END_TEST

START_TEST(test_failing_command) {
    float r[3];
    ck_assert_int_eq(run3("cat >/dev/null; exit 3", r), ERR_RUNTIME);
    ck_assert_msg(strstr(err_msg(), "failed (exit status 3)"), "%s", err_msg());
    ck_assert_int_eq(run3("no_such_program_rlhf 2>/dev/null", r), ERR_RUNTIME);
    ck_assert_msg(strstr(err_msg(), "exit status 127"), "%s", err_msg());
    ck_assert_int_eq(run3("kill -TERM $$", r), ERR_RUNTIME);
    ck_assert_msg(strstr(err_msg(), "signal") || strstr(err_msg(), "exit status 143"), "%s", err_msg());
}
END_TEST

int main(void) {
    Suite *s = suite_create("rewardcmd");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_records_and_numbers);
    tcase_add_test(tc, test_reward_objects);
    tcase_add_test(tc, test_bad_output);
    tcase_add_test(tc, test_failing_command);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
