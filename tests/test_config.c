/* config: defaults, YAML loading, includes, --set overrides, dump round-trip and every error message. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"

typedef struct {
    int64_t dim;
    int64_t layers;
    double lr;
    bool shuffle;
    char *name;
    char *optim;
    ConfigStrList sources;
    ConfigNumList betas;
} Cfg;

static const ConfigKey SCHEMA[] = {
    {.key = "model.dim", .type = CONFIG_INT, .offset = offsetof(Cfg, dim), .def = "64", .min = 8, .max = 4096,
     .help = "embedding width"},
    {.key = "train.lr", .type = CONFIG_FLOAT, .offset = offsetof(Cfg, lr), .def = "3e-4", .min = 0, .max = 1,
     .help = "peak learning rate"},
    {.key = "train.shuffle", .type = CONFIG_BOOL, .offset = offsetof(Cfg, shuffle), .def = "true",
     .help = "shuffle each epoch"},
    /* a key of "model" listed apart from model.dim: the dump must still group it */
    {.key = "model.layers", .type = CONFIG_INT, .offset = offsetof(Cfg, layers), .def = "2", .help = "blocks"},
    {.key = "name", .type = CONFIG_STRING, .offset = offsetof(Cfg, name), .def = "", .help = "run name"},
    {.key = "train.optim", .type = CONFIG_ENUM, .offset = offsetof(Cfg, optim), .def = "adamw",
     .choices = "adamw|sgd", .help = "optimizer"},
    {.key = "data.sources", .type = CONFIG_STRLIST, .offset = offsetof(Cfg, sources), .def = "[human, rs]",
     .help = "sources"},
    {.key = "train.betas", .type = CONFIG_NUMLIST, .offset = offsetof(Cfg, betas), .def = "[0.9, 0.95]", .min = 0,
     .max = 1, .help = "AdamW betas"},
    {0},
};

static char tmpdir[64];

static void setup(void) {
    strcpy(tmpdir, "/tmp/test_config.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Write `text` to tmpdir/name and return the path in a static buffer (one per slot). */
static const char *put(const char *name, const char *text) {
    static char paths[4][256];
    static int slot;
    char *p = paths[slot++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* Load text as a file on top of defaults; returns the code, leaves the message in err_msg(). */
static Err load_text(Cfg *c, const char *text) {
    config_defaults(SCHEMA, c);
    return config_load(SCHEMA, c, put("c.yaml", text));
}

/* The error message without the temp folder, so tests can compare exact text. */
static const char *msg(void) {
    static char buf[2048];
    const char *m = err_msg();
    char *out = buf;
    size_t n = strlen(tmpdir);
    while (*m && out < buf + sizeof buf - 1) {
        if (strncmp(m, tmpdir, n) == 0 && m[n] == '/') m += n + 1;
        else *out++ = *m++;
    }
    *out = 0;
    return buf;
}

static void expect_error(const char *text, const char *want) {
    Cfg c;
    ck_assert_int_eq(load_text(&c, text), ERR_INPUT);
    ck_assert_str_eq(msg(), want);
    config_free(SCHEMA, &c);
}

START_TEST(test_defaults) {
    Cfg c;
    config_defaults(SCHEMA, &c);
    ck_assert_int_eq(c.dim, 64);
    ck_assert_int_eq(c.layers, 2);
    ck_assert_double_eq(c.lr, 3e-4);
    ck_assert(c.shuffle);
    ck_assert_str_eq(c.name, "");
    ck_assert_str_eq(c.optim, "adamw");
    ck_assert_uint_eq(c.sources.n, 2);
    ck_assert_str_eq(c.sources.items[1], "rs");
    ck_assert_uint_eq(c.betas.n, 2);
    ck_assert_double_eq(c.betas.items[1], 0.95);
    config_free(SCHEMA, &c);
}
END_TEST

START_TEST(test_load_nested_and_dotted) {
    Cfg c;
    ck_assert_int_eq(load_text(&c, "# a comment\n"
                                   "model:\n  dim: 128\n"
                                   "train.lr: 0.001\n"
                                   "train:\n  shuffle: no\n  optim: sgd\n  betas: [0.5]\n"
                                   "name: \"tiny: run\"\n"
                                   "data:\n  sources:\n    - gatt\n    - rs\n    - human\n"),
                     ERR_OK);
    ck_assert_int_eq(c.dim, 128);
    ck_assert_int_eq(c.layers, 2); /* untouched keys keep their default */
    ck_assert_double_eq(c.lr, 0.001);
    ck_assert(!c.shuffle);
    ck_assert_str_eq(c.optim, "sgd");
    ck_assert_str_eq(c.name, "tiny: run");
    ck_assert_uint_eq(c.sources.n, 3);
    ck_assert_str_eq(c.sources.items[0], "gatt");
    ck_assert_uint_eq(c.betas.n, 1);
    ck_assert_double_eq(c.betas.items[0], 0.5);
    config_free(SCHEMA, &c);
}
END_TEST

START_TEST(test_empty_file_and_scalar_list) {
    Cfg c;
    ck_assert_int_eq(load_text(&c, ""), ERR_OK);
    ck_assert_int_eq(c.dim, 64);
    config_free(SCHEMA, &c);
    ck_assert_int_eq(load_text(&c, "# only a comment\n"), ERR_OK);
    config_free(SCHEMA, &c);
    /* a single scalar is a one-element list; an empty value an empty list */
    ck_assert_int_eq(load_text(&c, "data.sources: human\ntrain.betas:\n"), ERR_OK);
    ck_assert_uint_eq(c.sources.n, 1);
    ck_assert_str_eq(c.sources.items[0], "human");
    ck_assert_uint_eq(c.betas.n, 0);
    config_free(SCHEMA, &c);
}
END_TEST

START_TEST(test_include_overrides) {
    put("base.yaml", "model:\n  dim: 256\n  layers: 4\ntrain.lr: 0.01\n");
    char sub[256];
    snprintf(sub, sizeof sub, "%s/sub", tmpdir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    put("sub/more.yaml", "include: ../base.yaml\nmodel.layers: 6\n");
    Cfg c;
    /* include after a key still loads first: the including file wins */
    ck_assert_int_eq(load_text(&c, "model.dim: 32\ninclude: sub/more.yaml\n"), ERR_OK);
    ck_assert_int_eq(c.dim, 32);
    ck_assert_int_eq(c.layers, 6);
    ck_assert_double_eq(c.lr, 0.01);
    config_free(SCHEMA, &c);
    put("other.yaml", "train.lr: 0.5\nmodel.layers: 9\n");
    ck_assert_int_eq(load_text(&c, "include: [base.yaml, other.yaml]\n"), ERR_OK);
    ck_assert_int_eq(c.dim, 256);
    ck_assert_int_eq(c.layers, 9); /* later include overrides the earlier one */
    ck_assert_double_eq(c.lr, 0.5);
    config_free(SCHEMA, &c);
}
END_TEST

START_TEST(test_include_errors) {
    expect_error("include: nothere.yaml\n",
                 "c.yaml:1: include 'nothere.yaml': cannot open nothere.yaml: No such file or directory");
    /* The message carries the real path of the missing file; strip only the folder prefix above. */
    put("bad.yaml", "model:\n  dimm: 3\n");
    expect_error("\ninclude: bad.yaml\n", "c.yaml:2: include 'bad.yaml': bad.yaml:2: unknown key 'model.dimm'");
    put("loop.yaml", "include: loop.yaml\n");
    Cfg c;
    ck_assert_int_eq(load_text(&c, "include: loop.yaml\n"), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(msg(), "includes nested deeper than 16 (a cycle?)"));
    config_free(SCHEMA, &c);
    expect_error("include: {a: 1}\n", "c.yaml:1: include: expected a file name, got a mapping");
    expect_error("include:\n", "c.yaml:1: include: expected a file name, got nothing");
}
END_TEST

START_TEST(test_errors) {
    expect_error("model:\n  dim: 8\ntrain:\n  lrr: 1\n", "c.yaml:4: unknown key 'train.lrr'");
    expect_error("modle.dim: 8\n", "c.yaml:1: unknown key 'modle.dim'");
    expect_error("train:\n  shuffle: true\n\n  lr: fast\n", "c.yaml:4: train.lr: expected a number, got 'fast'");
    expect_error("model.dim: 3.5\n", "c.yaml:1: model.dim: expected an integer, got '3.5'");
    expect_error("model.dim: 99999999999999999999999\n",
                 "c.yaml:1: model.dim: expected an integer, got '99999999999999999999999'");
    expect_error("model.dim: 5000\n", "c.yaml:1: model.dim: 5000 is out of range [8, 4096]");
    expect_error("train.lr: -1e-3\n", "c.yaml:1: train.lr: -1e-3 is out of range [0, 1]");
    expect_error("train.lr: .nan\n", "c.yaml:1: train.lr: expected a number, got '.nan'");
    expect_error("train.lr: 1e999\n", "c.yaml:1: train.lr: expected a number, got '1e999'");
    expect_error("train.shuffle: maybe\n", "c.yaml:1: train.shuffle: expected true or false, got 'maybe'");
    expect_error("train.optim: adam\n", "c.yaml:1: train.optim: expected one of adamw|sgd, got 'adam'");
    expect_error("train.betas: [0.9, 2]\n", "c.yaml:1: train.betas: 2 is out of range [0, 1]");
    expect_error("train.betas: [0.9, x]\n", "c.yaml:1: train.betas: expected a number, got 'x'");
    expect_error("data.sources:\n  - a\n  - [b]\n", "c.yaml:3: data.sources: list items must be scalars, got a list");
    expect_error("data.sources: {a: 1}\n", "c.yaml:1: data.sources: expected a list of strings, got a mapping");
    expect_error("model.dim: [1, 2]\n", "c.yaml:1: model.dim: expected an int, got a list");
    expect_error("model: 5\n", "c.yaml:1: 'model' is a section: expected a mapping, got a scalar");
    expect_error("model:\n  dim: 8\nmodel:\n  layers: 1\n", "c.yaml:3: duplicate key 'model' (first at line 1)");
    expect_error("model:\n  dim: 8\nmodel.dim: 9\n", "c.yaml:3: duplicate key 'model.dim'");
    expect_error("model:\n  dim: 8\n  dim: 9\n", "c.yaml:3: duplicate key 'model.dim' (first at line 2)");
    expect_error("- a\n- b\n", "c.yaml:1: expected a mapping of keys at the top, got a list");
    expect_error("? [a]\n: 1\n", "c.yaml:1: keys must be plain names, got a list");
    expect_error("\"\": 1\n", "c.yaml:1: empty key");
    expect_error("a: 1\n---\nb: 2\n", "c.yaml:3: more than one YAML document");
    /* malformed YAML: libyaml's own words, with the line */
    Cfg c;
    ck_assert_int_eq(load_text(&c, "model:\n  dim: 8\n layers: [1\n"), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(msg(), "c.yaml:3: malformed YAML: "));
    config_free(SCHEMA, &c);
    ck_assert_int_eq(load_text(&c, "model: {dim: 8\n"), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(msg(), "c.yaml:2: malformed YAML: did not find expected ',' or '}'"));
    config_free(SCHEMA, &c);
    ck_assert_int_eq(load_text(&c, "name: \"abc\n"), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(msg(), "malformed YAML: found unexpected end of stream"));
    config_free(SCHEMA, &c);
    /* a file that is not there */
    config_defaults(SCHEMA, &c);
    ck_assert_int_eq(config_load(SCHEMA, &c, "/nonexistent/x.yaml"), ERR_INPUT);
    ck_assert_str_eq(err_msg(), "cannot open /nonexistent/x.yaml: No such file or directory");
    config_free(SCHEMA, &c);
}
END_TEST

START_TEST(test_set) {
    Cfg c;
    config_defaults(SCHEMA, &c);
    ck_assert_int_eq(config_set(SCHEMA, &c, "model.dim=512"), ERR_OK);
    ck_assert_int_eq(config_set(SCHEMA, &c, "name=a: b=c"), ERR_OK);
    ck_assert_int_eq(config_set(SCHEMA, &c, "data.sources=[gatt, \"x, y\"]"), ERR_OK);
    ck_assert_int_eq(config_set(SCHEMA, &c, "train.betas=0.1"), ERR_OK);
    ck_assert_int_eq(c.dim, 512);
    ck_assert_str_eq(c.name, "a: b=c");
    ck_assert_uint_eq(c.sources.n, 2);
    ck_assert_str_eq(c.sources.items[1], "x, y");
    ck_assert_uint_eq(c.betas.n, 1);
    ck_assert_int_eq(config_set(SCHEMA, &c, "data.sources="), ERR_OK);
    ck_assert_uint_eq(c.sources.n, 0);

    ck_assert_int_eq(config_set(SCHEMA, &c, "train.lrr=1"), ERR_INPUT);
    ck_assert_str_eq(err_msg(), "--set: unknown key 'train.lrr'");
    ck_assert_int_eq(config_set(SCHEMA, &c, "train.lr"), ERR_INPUT);
    ck_assert_str_eq(err_msg(), "--set: expected key=value, got 'train.lr'");
    ck_assert_int_eq(config_set(SCHEMA, &c, "=3"), ERR_INPUT);
    ck_assert_int_eq(config_set(SCHEMA, &c, "train.lr=fast"), ERR_INPUT);
    ck_assert_str_eq(err_msg(), "--set: train.lr: expected a number, got 'fast'");
    ck_assert_int_eq(config_set(SCHEMA, &c, "train.lr=5"), ERR_INPUT);
    ck_assert_str_eq(err_msg(), "--set: train.lr: 5 is out of range [0, 1]");
    ck_assert_int_eq(config_set(SCHEMA, &c, "model.dim="), ERR_INPUT);
    ck_assert_str_eq(err_msg(), "--set: model.dim: expected an integer, got ''");
    ck_assert_int_eq(config_set(SCHEMA, &c, "train.betas=[0.5"), ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err_msg(), "--set: malformed YAML: did not find expected"));
    ck_assert_int_eq(config_set(SCHEMA, &c, "model=3"), ERR_INPUT);
    ck_assert_str_eq(err_msg(), "--set: unknown key 'model'");
    ck_assert_double_eq(c.lr, 3e-4); /* failed overrides leave the value alone */
    ck_assert_int_eq(c.dim, 512);
    config_free(SCHEMA, &c);
}
END_TEST

START_TEST(test_dump_round_trip) {
    Cfg a, b;
    config_defaults(SCHEMA, &a);
    ck_assert_int_eq(config_set(SCHEMA, &a, "name=say \"hi\"\\ \ttab: yes\nnext"), ERR_OK);
    ck_assert_int_eq(config_set(SCHEMA, &a, "train.lr=0.1"), ERR_OK);
    ck_assert_int_eq(config_set(SCHEMA, &a, "data.sources=[\"true\", \"1\", \"a: b\", \"\"]"), ERR_OK);
    char *text = config_dump_string(SCHEMA, &a);
    /* sections appear once, keys in schema order within them */
    ck_assert_ptr_nonnull(strstr(text, "model:\n  dim: 64\n  layers: 2\ntrain:\n  lr: 0.1\n"));
    config_defaults(SCHEMA, &b);
    ck_assert_int_eq(config_load(SCHEMA, &b, put("dump.yaml", text)), ERR_OK);
    char *again = config_dump_string(SCHEMA, &b);
    ck_assert_str_eq(text, again);
    ck_assert_str_eq(b.name, a.name);
    ck_assert_double_eq(b.lr, 0.1);
    ck_assert_uint_eq(b.sources.n, 4);
    ck_assert_str_eq(b.sources.items[0], "true");
    ck_assert_str_eq(b.sources.items[3], "");
    free(text);
    free(again);
    config_free(SCHEMA, &a);
    config_free(SCHEMA, &b);
}
END_TEST

START_TEST(test_help_lists_every_key) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_print_help(SCHEMA, f);
    fclose(f);
    for (const ConfigKey *k = SCHEMA; k->key; k++) {
        ck_assert_ptr_nonnull(strstr(buf, k->key));
        ck_assert_ptr_nonnull(strstr(buf, k->help));
    }
    ck_assert_ptr_nonnull(strstr(buf, "(one of adamw|sgd)"));
    ck_assert_ptr_nonnull(strstr(buf, "(range [8, 4096])"));
    ck_assert_ptr_nonnull(strstr(buf, "[human, rs]"));
    free(buf);
}
END_TEST

int main(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_load_nested_and_dotted);
    tcase_add_test(tc, test_empty_file_and_scalar_list);
    tcase_add_test(tc, test_include_overrides);
    tcase_add_test(tc, test_include_errors);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_set);
    tcase_add_test(tc, test_dump_round_trip);
    tcase_add_test(tc, test_help_lists_every_key);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
