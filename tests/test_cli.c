/* cli: the shared options (cli_common_*) — values, defaults, bad and missing values, unknown options,
 * --help and --version, shorthand assignments and the configuration they build. */
#include <check.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "testutil.h"

#define PROG "prog"

static void usage(FILE *f) { fprintf(f, "usage: prog [options] FILE...\n"); }

/* A program with its own --out and -K next to every shared option. */
static const struct option LONGOPTS[] = {
    {"out", required_argument, 0, 'o'}, CLI_OPTIONS_COMMON, CLI_OPTIONS_STORE, CLI_OPTION_MODEL, {0, 0, 0, 0},
};

typedef struct {
    CliCommon cli;
    char *argv[64]; /* the inputs point into it */
    const char *out;
    char out_text[4096], err_text[4096]; /* what the parse printed on stdout and stderr */
} Parsed;

/* Read what was written to f since it was created into buf, and close it. */
static void slurp(FILE *f, char *buf, size_t cap) {
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* Parse the NULL-terminated words (after argv[0]) the way a program's parse_opts does; returns what
 * it would return: 0, CLI_DONE or an exit code. p->cli needs cli_common_free afterwards. */
static int parse(Parsed *p, const char *const *words) {
    memset(p, 0, sizeof *p);
    char **argv = p->argv;
    argv[0] = "prog";
    int argc = 1;
    while (words[argc - 1]) {
        ck_assert_int_lt(argc, 63);
        argv[argc] = (char *)words[argc - 1];
        argc++;
    }
    cli_common_init(&p->cli, PROG, "9.9.9", usage, argc);
    FILE *out = tmpfile(), *err = tmpfile();
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(err);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    int c, rc = 0;
    optind = 0; /* glibc: start afresh, as at a program's first getopt_long */
    opterr = 0;
    while (!rc && (c = getopt_long(argc, argv, ":hK:", LONGOPTS, NULL)) != -1) {
        switch (c) {
        case 'o': p->out = optarg; break;
        case 'K': cli_common_set(&p->cli, "sample.k", optarg); break;
        default: rc = cli_common_opt(&p->cli, c, argv);
        }
    }
    if (!rc) cli_common_inputs(&p->cli, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    slurp(out, p->out_text, sizeof p->out_text);
    slurp(err, p->err_text, sizeof p->err_text);
    return rc;
}

#define PARSE(p, ...) parse(p, (const char *const[]){__VA_ARGS__, NULL})

START_TEST(test_defaults) {
    Parsed p;
    ck_assert_int_eq(parse(&p, (const char *const[]){NULL}), 0);
    ck_assert_ptr_null(p.cli.config);
    ck_assert_int_eq(p.cli.nsets, 0);
    ck_assert_int_eq(p.cli.seed, -1);
    ck_assert_int_eq(p.cli.threads, 0);
    ck_assert_ptr_null(p.cli.db);
    ck_assert_int_eq(p.cli.iteration, -1);
    ck_assert_ptr_null(p.cli.model);
    ck_assert_int_eq(p.cli.ninputs, 0);
    ck_assert_str_eq(p.err_text, "");
    ck_assert_str_eq(p.out_text, "");
    cli_common_free(&p.cli);
}
END_TEST

START_TEST(test_every_option) {
    Parsed p;
    ck_assert_int_eq(PARSE(&p, "--config", "c.yaml", "--set", "a=1", "in1", "--seed", "7", "--threads", "3", "--set",
                           "b=2", "--db", "x.db", "--iteration=4", "--model", "m", "--out", "o", "-", "--", "--seed"),
                     0);
    ck_assert_str_eq(p.cli.config, "c.yaml");
    ck_assert_int_eq(p.cli.nsets, 2);
    ck_assert_str_eq(p.cli.sets[0], "a=1");
    ck_assert_str_eq(p.cli.sets[1], "b=2");
    ck_assert_int_eq(p.cli.seed, 7);
    ck_assert_int_eq(p.cli.threads, 3);
    ck_assert_str_eq(p.cli.db, "x.db");
    ck_assert_int_eq(p.cli.iteration, 4);
    ck_assert_str_eq(p.cli.model, "m");
    ck_assert_str_eq(p.out, "o");
    /* getopt_long moves the inputs behind the options; "--" ends the options */
    ck_assert_int_eq(p.cli.ninputs, 3);
    ck_assert_str_eq(p.cli.inputs[0], "in1");
    ck_assert_str_eq(p.cli.inputs[1], "-");
    ck_assert_str_eq(p.cli.inputs[2], "--seed");
    ck_assert_str_eq(p.err_text, "");
    cli_common_free(&p.cli);
}
END_TEST

START_TEST(test_abbreviations_and_limits) {
    Parsed p;
    ck_assert_int_eq(PARSE(&p, "--thr", "5000", "--it", "0", "--seed", "0", "--conf", "c"), 0);
    ck_assert_int_eq(p.cli.threads, 1024); /* capped */
    ck_assert_int_eq(p.cli.iteration, 0);
    ck_assert_int_eq(p.cli.seed, 0);
    ck_assert_str_eq(p.cli.config, "c");
    cli_common_free(&p.cli);
    ck_assert_int_eq(PARSE(&p, "--seed", "9223372036854775807", "--threads", "1"), 0);
    ck_assert_int_eq(p.cli.seed, INT64_MAX);
    ck_assert_int_eq(p.cli.threads, 1);
    cli_common_free(&p.cli);
}
END_TEST

START_TEST(test_bad_values) {
    static const struct {
        const char *opt, *value, *msg;
    } cases[] = {
        {"--seed", "x", "prog: --seed: expected an integer >= 0, got 'x'\n"},
        {"--seed", "-1", "prog: --seed: expected an integer >= 0, got '-1'\n"},
        {"--seed", "1x", "prog: --seed: expected an integer >= 0, got '1x'\n"},
        {"--seed", "", "prog: --seed: expected an integer >= 0, got ''\n"},
        {"--seed", "99999999999999999999", "prog: --seed: expected an integer >= 0, got '99999999999999999999'\n"},
        {"--threads", "0", "prog: --threads: expected an integer >= 1, got '0'\n"},
        {"--threads", "two", "prog: --threads: expected an integer >= 1, got 'two'\n"},
        {"--iteration", "-3", "prog: --iteration: expected an integer >= 0, got '-3'\n"},
        {"--iteration", "1.5", "prog: --iteration: expected an integer >= 0, got '1.5'\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Parsed p;
        ck_assert_int_eq(PARSE(&p, cases[i].opt, cases[i].value, "--help"), ERR_INPUT);
        ck_assert_str_eq(p.err_text, cases[i].msg);
        ck_assert_str_eq(p.out_text, ""); /* parsing stopped before --help */
        cli_common_free(&p.cli);
    }
}
END_TEST

START_TEST(test_missing_values) {
    static const char *const opts[] = {"--config", "--set", "--seed", "--threads", "--db", "--iteration", "--model", "--out"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        Parsed p;
        ck_assert_int_eq(PARSE(&p, "--seed", "1", opts[i]), ERR_INPUT);
        char want[128];
        snprintf(want, sizeof want, "prog: option '%s' needs a value (see --help)\n", opts[i]);
        ck_assert_str_eq(p.err_text, want);
        cli_common_free(&p.cli);
    }
    Parsed p;
    ck_assert_int_eq(PARSE(&p, "-K"), ERR_INPUT);
    ck_assert_str_eq(p.err_text, "prog: option '-K' needs a value (see --help)\n");
    cli_common_free(&p.cli);
}
END_TEST

/* Command lines whose whole effect is a return code and what they print. */
static const struct {
    const char *words[6]; /* NULL after the last */
    int rc;
    const char *out, *err;
} OUTCOMES[] = {
    {{"--bogus", "--help"}, ERR_INPUT, "", "prog: unknown option '--bogus' (see --help)\n"},
    {{"-x"}, ERR_INPUT, "", "prog: unknown option '-x' (see --help)\n"},
    {{"--help=yes"}, ERR_INPUT, "", "prog: unknown option '--help=yes' (see --help)\n"}, /* takes no value */
    {{"--se", "1"}, ERR_INPUT, "", "prog: unknown option '--se' (see --help)\n"}, /* --seed or --set? */
    {{"--seed", "2", "--help", "--bogus"}, CLI_DONE, "usage: prog [options] FILE...\n", ""},
    {{"-h"}, CLI_DONE, "usage: prog [options] FILE...\n", ""},
    {{"--version", "--help"}, CLI_DONE, "prog (rlhf.c) 9.9.9\n", ""},
    {{"--ver"}, CLI_DONE, "prog (rlhf.c) 9.9.9\n", ""},
};

START_TEST(test_unknown_options_help_version) {
    Parsed p;
    ck_assert_int_eq(parse(&p, OUTCOMES[_i].words), OUTCOMES[_i].rc);
    ck_assert_str_eq(p.out_text, OUTCOMES[_i].out);
    ck_assert_str_eq(p.err_text, OUTCOMES[_i].err);
    cli_common_free(&p.cli);
}
END_TEST

typedef struct {
    int64_t k, seed;
    char *name;
} Cfg;

static const ConfigKey SCHEMA[] = {
    {.key = "sample.k", .type = CONFIG_INT, .offset = offsetof(Cfg, k), .def = "1", .min = 1, .max = 100, .help = "k"},
    {.key = "seed", .type = CONFIG_INT, .offset = offsetof(Cfg, seed), .def = "1", .min = 0, .max = 1e18, .help = "seed"},
    {.key = "name", .type = CONFIG_STRING, .offset = offsetof(Cfg, name), .def = "", .help = "name"},
    {0},
};

START_TEST(test_shorthand_and_config) {
    Parsed p;
    Cfg c;
    /* the shorthand is an assignment in its place among the --set: the later one wins */
    ck_assert_int_eq(PARSE(&p, "-K", "5", "--set", "sample.k=3", "--set", "seed=4", "--seed", "9", "-K7", "--set", "name=a"),
                     0);
    ck_assert_int_eq(p.cli.nsets, 5);
    ck_assert_str_eq(p.cli.sets[0], "sample.k=5");
    ck_assert_str_eq(p.cli.sets[3], "sample.k=7");
    ck_assert_int_eq(cli_common_config(&p.cli, SCHEMA, &c, &c.seed), 0);
    ck_assert_int_eq(c.k, 7);
    ck_assert_int_eq(c.seed, 9); /* --seed wins over --set seed=..., wherever it stands */
    ck_assert_str_eq(c.name, "a");
    config_free(SCHEMA, &c);
    /* a program without a seed key passes NULL */
    ck_assert_int_eq(cli_common_config(&p.cli, SCHEMA, &c, NULL), 0);
    ck_assert_int_eq(c.seed, 4);
    config_free(SCHEMA, &c);
    cli_common_free(&p.cli);
    ck_assert_int_eq(p.cli.nsets, 0);
    ck_assert_ptr_null(p.cli.sets);
    cli_common_free(&p.cli); /* twice is harmless */

    ck_assert_int_eq(PARSE(&p, "--seed", "3"), 0);
    ck_assert_int_eq(cli_common_config(&p.cli, SCHEMA, &c, &c.seed), 0);
    ck_assert_int_eq(c.seed, 3);
    ck_assert_int_eq(c.k, 1);
    config_free(SCHEMA, &c);
    cli_common_free(&p.cli);
}
END_TEST

/* cli_common_config's failures print "prog: message" on stderr; run one with stderr in buf. */
static int config_failing(const CliCommon *cc, char *buf, size_t cap) {
    FILE *err = tmpfile();
    ck_assert_ptr_nonnull(err);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(err), 2);
    Cfg c;
    int rc = cli_common_config(cc, SCHEMA, &c, &c.seed); /* frees c on failure */
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    slurp(err, buf, cap);
    if (!rc) config_free(SCHEMA, &c);
    return rc;
}

START_TEST(test_config_errors) {
    Parsed p;
    char err[512];
    ck_assert_int_eq(PARSE(&p, "-K", "0"), 0);
    ck_assert_int_eq(config_failing(&p.cli, err, sizeof err), ERR_INPUT);
    ck_assert_str_eq(err, "prog: --set: sample.k: 0 is out of range [1, 100]\n");
    cli_common_free(&p.cli);
    ck_assert_int_eq(PARSE(&p, "--set", "seed=x", "--seed", "2"), 0);
    ck_assert_int_eq(config_failing(&p.cli, err, sizeof err), ERR_INPUT);
    ck_assert_str_eq(err, "prog: --set: seed: expected an integer, got 'x'\n");
    cli_common_free(&p.cli);
    ck_assert_int_eq(PARSE(&p, "--config", "/nonexistent/c.yaml"), 0);
    ck_assert_int_eq(config_failing(&p.cli, err, sizeof err), ERR_INPUT);
    ck_assert_str_eq(err, "prog: cannot open /nonexistent/c.yaml: No such file or directory\n");
    cli_common_free(&p.cli);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_every_option);
    tcase_add_test(tc, test_abbreviations_and_limits);
    tcase_add_test(tc, test_bad_values);
    tcase_add_test(tc, test_missing_values);
    tcase_add_loop_test(tc, test_unknown_options_help_version, 0, sizeof OUTCOMES / sizeof OUTCOMES[0]);
    tcase_add_test(tc, test_shorthand_and_config);
    tcase_add_test(tc, test_config_errors);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
