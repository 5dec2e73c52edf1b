/*
 * prefs_db — the preference store from the command line.
 *
 *   prefs_db [--db PATH] init
 *   prefs_db [--db PATH] import [--format jsonl|hh-rlhf|pku] [flags] FILE|-
 *   prefs_db [--db PATH] export [--table T] [filters] > out.jsonl
 *   prefs_db [--db PATH] stats [filters]
 *   prefs_db [--db PATH] split [--test-fraction F] [--seed N] [--force]
 *   prefs_db [--db PATH] annotate [--dimension D] [--rater CMD] [filters]
 *
 * Exit status: 0 done, 1 runtime failure (I/O, database busy, rater failed), 2 usage or input
 * error (bad flag, bad line, a store from a newer schema). Errors are one line on stderr.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "prefs_db.h"


enum { CMD_INIT = 1, CMD_IMPORT = 2, CMD_EXPORT = 4, CMD_STATS = 8, CMD_SPLIT = 16, CMD_ANNOTATE = 32 };
#define CMD_ALL 63

static const struct {
    const char *name;
    int bit;
} COMMANDS[] = {{"init", CMD_INIT},   {"import", CMD_IMPORT}, {"export", CMD_EXPORT},
                {"stats", CMD_STATS}, {"split", CMD_SPLIT},   {"annotate", CMD_ANNOTATE}};

/* Every option, the subcommands it applies to, and its line in --help. */
static const struct {
    struct option o;
    int cmds;
    const char *help;
} OPTS[] = {
    {{"db", required_argument, 0, 'D'}, CMD_ALL, "--db PATH           the store (default ./prefs.db)"},
    {{"format", required_argument, 0, 'f'}, CMD_IMPORT,
     "--format F          import: jsonl (default; our records), hh-rlhf, pku (PKU-SafeRLHF rows)"},
    {{"dimension", required_argument, 0, 'd'}, CMD_IMPORT | CMD_EXPORT | CMD_STATS | CMD_ANNOTATE,
     "--dimension D       helpfulness | safety: import default (required for hh-rlhf), filter, annotate"},
    {{"split", required_argument, 0, 's'}, CMD_IMPORT | CMD_EXPORT | CMD_STATS | CMD_ANNOTATE,
     "--split S           train | test: import default for records without one; filter"},
    {{"rating", required_argument, 0, 'r'}, CMD_IMPORT,
     "--rating N          import: rating 0..3 for formats without one (default 0 = negligibly better/unsure)"},
    {{"annotator", required_argument, 0, 'a'}, CMD_IMPORT | CMD_ANNOTATE,
     "--annotator NAME    who judged (default: the format's name; annotate: human, or rater)"},
    {{"model", required_argument, 0, 'm'}, CMD_IMPORT | CMD_EXPORT | CMD_STATS,
     "--model NAME        import: producing model of responses the input does not name; filter"},
    {{"source", required_argument, 0, 'S'}, CMD_IMPORT | CMD_EXPORT | CMD_STATS,
     "--source NAME       import: source of new prompts (default: the format's name); filter"},
    {{"iteration", required_argument, 0, 'i'}, CMD_IMPORT | CMD_EXPORT | CMD_STATS | CMD_ANNOTATE,
     "--iteration N       import default for records without one (default 0); filter"},
    {{"skip-bad", no_argument, 0, 'B'}, CMD_IMPORT,
     "--skip-bad          import: skip and count bad lines instead of stopping and keeping nothing"},
    {{"table", required_argument, 0, 't'}, CMD_EXPORT,
     "--table T           export: all (default: prompts, responses, comparisons, sft_examples),\n"
     "                    prompts, responses, comparisons, sft_examples, scores, runs, metrics"},
    {{"limit", required_argument, 0, 'l'}, CMD_EXPORT | CMD_ANNOTATE,
     "--limit N           at most N rows per table (export) or pairs (annotate)"},
    {{"test-fraction", required_argument, 0, 'F'}, CMD_SPLIT,
     "--test-fraction F   split: share of prompts in test (default 0.1)"},
    {{"seed", required_argument, 0, 'e'}, CMD_SPLIT, "--seed N            split: hash seed (default 0)"},
    {{"force", no_argument, 0, 'o'}, CMD_SPLIT,
     "--force             split: also reassign prompts that already have a split"},
    {{"rater", required_argument, 0, 'R'}, CMD_ANNOTATE,
     "--rater CMD         annotate: pipe pending pairs (JSONL) to sh -c CMD, store the comparisons it prints"},
    {{"help", no_argument, 0, 'h'}, CMD_ALL, "--help              this text"},
    {{"version", no_argument, 0, 'V'}, CMD_ALL, "--version           the version"},
};
#define N_OPTS (sizeof OPTS / sizeof OPTS[0])

static void usage(FILE *f) {
    fprintf(f, "usage: prefs_db [--db PATH] COMMAND [options] [FILE|-]\n\n"
               "commands:\n"
               "  init       create prefs.db or migrate it to this build's schema\n"
               "  import     add JSONL records from FILE or - (stdin); all or nothing\n"
               "  export     write rows as JSONL records on stdout\n"
               "  stats      counts per dimension, rating, split, iteration, safety bin (Table 6 style)\n"
               "  split      assign prompts to train/test by a hash of their dialogue\n"
               "  annotate   rate pending pairs at the terminal, or with --rater CMD\n\n"
               "options:\n");
    for (size_t i = 0; i < N_OPTS; i++) fprintf(f, "  %s\n", OPTS[i].help);
    fprintf(f, "\nannotate answers: a|b then 0-3, optionally y|n y|n for A and B safe (\"a2yn\");\n"
               "s skip, u undo, q quit, ? help. Exit status: 0 ok, 1 runtime failure, 2 usage or input error.\n"
               "Tables, views and record formats: docs/store.md.\n");
}

static int bad_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "prefs_db: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see prefs_db --help)\n");
    return ERR_INPUT;
}

static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int main(int argc, char **argv) {
    Options opt = {.db_path = "prefs.db", .iteration = -1, .test_fraction = 0.1};
    struct option longopts[N_OPTS + 1];
    for (size_t i = 0; i < N_OPTS; i++) longopts[i] = OPTS[i].o;
    memset(&longopts[N_OPTS], 0, sizeof longopts[N_OPTS]);
    int seen[N_OPTS] = {0};
    int c, idx;
    int64_t v;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", longopts, &idx)) != -1 || optind < argc) {
        if (c == -1) { /* a positional argument: "+" stops there, so step over it and go on */
            optind++;
            continue;
        }
        if (c == '?') return bad_usage("unknown option '%s'", argv[optind - 1]);
        if (c == ':') return bad_usage("option '%s' needs a value", argv[optind - 1]);
        for (size_t i = 0; i < N_OPTS; i++)
            if (OPTS[i].o.val == c) seen[i] = 1;
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'V': {
            char v[64];
            snprintf(v, sizeof v, "%s, schema version %d", RLHF_VERSION, STORE_SCHEMA_VERSION);
            cli_print_version("prefs_db", v);
            return 0;
        }
        case 'D': opt.db_path = optarg; break;
        case 'f':
            if (strcmp(optarg, "jsonl") && strcmp(optarg, "hh-rlhf") && strcmp(optarg, "pku"))
                return bad_usage("--format must be jsonl, hh-rlhf or pku, not '%s'", optarg);
            opt.format = optarg;
            break;
        case 'd':
            if (strcmp(optarg, "helpfulness") && strcmp(optarg, "safety"))
                return bad_usage("--dimension must be helpfulness or safety, not '%s'", optarg);
            opt.dimension = optarg;
            break;
        case 's':
            if (strcmp(optarg, "train") && strcmp(optarg, "test"))
                return bad_usage("--split must be train or test, not '%s'", optarg);
            opt.split = optarg;
            break;
        case 'r':
            if (!parse_int(optarg, 0, 3, &v)) return bad_usage("--rating must be 0, 1, 2 or 3, not '%s'", optarg);
            opt.rating = (int)v;
            break;
        case 'a': opt.annotator = optarg; break;
        case 'm': opt.model = optarg; break;
        case 'S': opt.source = optarg; break;
        case 'i':
            if (!parse_int(optarg, 0, INT64_MAX, &opt.iteration))
                return bad_usage("--iteration must be a non-negative integer, not '%s'", optarg);
            break;
        case 'B': opt.skip_bad = 1; break;
        case 't': opt.table = optarg; break;
        case 'l':
            if (!parse_int(optarg, 1, INT64_MAX, &opt.limit))
                return bad_usage("--limit must be a positive integer, not '%s'", optarg);
            break;
        case 'F': {
            char *end;
            opt.test_fraction = strtod(optarg, &end);
            if (!*optarg || *end || !(opt.test_fraction >= 0 && opt.test_fraction <= 1))
                return bad_usage("--test-fraction must be a number in [0, 1], not '%s'", optarg);
            break;
        }
        case 'e':
            if (!parse_int(optarg, 0, INT64_MAX, &v)) return bad_usage("--seed must be a non-negative integer, not '%s'", optarg);
            opt.seed = (uint64_t)v;
            break;
        case 'o': opt.force = 1; break;
        case 'R': opt.rater = optarg; break;
        }
    }
    /* Positional arguments, in order: the command, then (import only) the input. */
    const char *pos[3] = {0};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-") == 0 || a[0] != '-') {
            int takes_value = 0;
            if (i > 1 && argv[i - 1][0] == '-' && argv[i - 1][1] == '-' && !strchr(argv[i - 1], '='))
                for (size_t k = 0; k < N_OPTS; k++)
                    if (OPTS[k].o.has_arg == required_argument && !strcmp(argv[i - 1] + 2, OPTS[k].o.name))
                        takes_value = 1;
            if (!takes_value) {
                if (npos == 3) return bad_usage("unexpected argument '%s'", a);
                pos[npos++] = a;
            }
        }
    }
    if (npos == 0) {
        usage(stderr);
        return ERR_INPUT;
    }
    int cmd = 0;
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(pos[0], COMMANDS[i].name)) cmd = COMMANDS[i].bit;
    if (!cmd) return bad_usage("unknown command '%s'", pos[0]);
    for (size_t i = 0; i < N_OPTS; i++)
        if (seen[i] && !(OPTS[i].cmds & cmd))
            return bad_usage("--%s does not apply to this command", OPTS[i].o.name);
    if (cmd == CMD_IMPORT ? npos != 2 : npos != 1)
        return bad_usage(cmd == CMD_IMPORT ? "%s needs exactly one input (a file or -)" : "%s takes no file argument",
                         pos[0]);

    Err e = ERR_OK;
    Store *db;
    switch (cmd) {
    case CMD_INIT:
        if ((e = store_open(&db, opt.db_path)) == ERR_OK) {
            printf("%s: schema version %d\n", opt.db_path, store_schema_version(db));
            store_close(db);
        }
        break;
    case CMD_IMPORT: {
        if (!opt.format) opt.format = "jsonl";
        int hh = !strcmp(opt.format, "hh-rlhf"), pku = !strcmp(opt.format, "pku");
        if (hh && !opt.dimension) return bad_usage("%s needs --dimension (helpfulness or safety)", "--format hh-rlhf");
        if (pku && opt.dimension) return bad_usage("%s gives both dimensions; drop --dimension", "--format pku");
        const char *name = hh ? "hh-rlhf" : pku ? "pku-saferlhf" : NULL;
        if (!opt.annotator) opt.annotator = name;
        if (!opt.source) opt.source = name;
        if (!opt.model) opt.model = name;
        e = cmd_import(&opt, pos[1]);
        break;
    }
    case CMD_EXPORT: e = cmd_export(&opt); break;
    case CMD_STATS: e = cmd_stats(&opt); break;
    case CMD_SPLIT: e = cmd_split(&opt); break;
    case CMD_ANNOTATE: e = cmd_annotate(&opt); break;
    }
    if (e != ERR_OK) fprintf(stderr, "prefs_db: %s\n", err_msg());
    return (int)e;
}
