/*
 * cli — the parts of a program's main that every rlhf.c program does the same way (DESIGN §7):
 * errors as one line "PROG: message" on stderr with the exit code, integer flags checked whole,
 * and the configuration built as defaults, then --config FILE, then each --set in order.
 *
 * The options most programs share (--config, --set, --seed, --threads, --help, --version, and
 * --db, --iteration, --model where a program has them) are parsed once, here, into a CliCommon. A
 * program lists them in its getopt_long table next to its own options and hands every result it
 * does not know itself to cli_common_opt, which also reports unknown options and missing values:
 *
 *     static const struct option longopts[] = {
 *         {"out", required_argument, 0, 'o'}, CLI_OPTIONS_COMMON, CLI_OPTIONS_STORE, {0, 0, 0, 0},
 *     };
 *     cli_common_init(&o->cli, PROG, VERSION, usage, argc);
 *     opterr = 0;
 *     while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
 *         switch (c) {
 *         case 'o': o->out = optarg; break;
 *         default: if ((rc = cli_common_opt(&o->cli, c, argv))) return rc;
 *         }
 *     }
 *     cli_common_inputs(&o->cli, argc, argv);
 *
 * and main, after parse_opts (which passes on CLI_DONE when --help or --version has printed):
 *
 *     int rc = parse_opts(argc, argv, &o);
 *     if (!rc) rc = cli_common_config(&o.cli, SCHEMA, &cfg, &cfg.seed);
 *     cli_common_free(&o.cli);
 *     if (rc) return rc == CLI_DONE ? 0 : rc;
 *
 * --seed N is stored after every --set, so it wins over --set seed=M wherever it stands.
 *
 * Exit codes: 0 ok, ERR_RUNTIME (1), ERR_INPUT (2) for usage and input errors.
 */
#ifndef RLHF_CLI_H
#define RLHF_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "err.h"

/* Print "prog: message" on stderr; returns code, so `return cli_fail(PROG, ERR_INPUT, ...)`. */
int cli_fail(const char *prog, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Parse the whole of s as a decimal integer >= lo into *out: 0, or ERR_INPUT after printing
 * "prog: OPT: expected an integer >= LO, got 'S'". */
int cli_int(const char *prog, const char *opt, const char *s, int64_t lo, int64_t *out);
/* The version of rlhf.c: every program prints it (one release, one number). */
#define RLHF_VERSION "0.1.0"

/* Print the --version line of every program, "prog (rlhf.c) version", on stdout. */
void cli_print_version(const char *prog, const char *version);
/* Defaults, then the file at path (may be NULL), then each "key=value" of sets, into cfg. On
 * failure cfg still needs config_free, and err_msg names the file and line or --set. */
Err cli_config(const ConfigKey *schema, void *cfg, const char *path, const char *const *sets, int nsets);

/* ---- the shared options ------------------------------------------------------------------------ */

/* getopt_long values of the shared options: above every char, so they never meet a program's own
 * short letters. --help is 'h', so that a program whose optstring has "h" takes -h as well. */
enum {
    CLI_OPT_HELP = 'h',
    CLI_OPT_CONFIG = 0x100,
    CLI_OPT_SET,
    CLI_OPT_SEED,
    CLI_OPT_THREADS,
    CLI_OPT_VERSION,
    CLI_OPT_DB,
    CLI_OPT_ITERATION,
    CLI_OPT_MODEL,
};

/* --config FILE, --set key=value (repeatable), --seed N (>= 0), --threads N (>= 1; above 1024 is
 * 1024), --help, --version. */
#define CLI_OPTIONS_COMMON                                                                                             \
    {"config", required_argument, 0, CLI_OPT_CONFIG}, {"set", required_argument, 0, CLI_OPT_SET},                      \
        {"seed", required_argument, 0, CLI_OPT_SEED}, {"threads", required_argument, 0, CLI_OPT_THREADS},              \
        {"help", no_argument, 0, CLI_OPT_HELP}, {"version", no_argument, 0, CLI_OPT_VERSION}
/* --db PATH, --iteration N (>= 0): the store and the pipeline iteration a run belongs to. */
#define CLI_OPTIONS_STORE {"db", required_argument, 0, CLI_OPT_DB}, {"iteration", required_argument, 0, CLI_OPT_ITERATION}
/* --model DIR: the one checkpoint a program reads. */
#define CLI_OPTION_MODEL {"model", required_argument, 0, CLI_OPT_MODEL}

/* Returned by cli_common_opt (and passed on by parse_opts functions) when --help or --version has
 * printed its text: the program's work is done, and it exits 0. */
#define CLI_DONE (-1)

typedef struct {
    /* the program, as cli_common_init was told */
    const char *prog;       /* the name that starts every message */
    const char *version;    /* the version number, e.g. "0.1.0": --version prints cli_print_version's line */
    void (*usage)(FILE *f); /* prints the --help text */
    /* what the command line said */
    const char *config;  /* --config FILE, or NULL */
    const char **sets;   /* every --set, in order, then the assignments of cli_common_set (argc + 1 slots) */
    int nsets;
    int64_t seed;        /* --seed N, or -1 */
    int threads;         /* --threads N, or 0: threads_set's default */
    const char *db;      /* --db PATH, or NULL */
    int64_t iteration;   /* --iteration N, or -1 (a program may put its own default here before parsing) */
    const char *model;   /* --model DIR, or NULL */
    char **inputs;       /* the arguments after the options (cli_common_inputs) */
    int ninputs;
    char **owned;        /* the strings cli_common_set built */
    int nowned;
} CliCommon;

/* Start cc for a command line of argc words: no options seen yet. prog, version and usage are kept
 * (not copied). Every cli_common_init needs a cli_common_free. */
void cli_common_init(CliCommon *cc, const char *prog, const char *version, void (*usage)(FILE *f), int argc);
/* Handle c, a getopt_long result that is not one of the program's own options (optarg and optind as
 * getopt_long left them; argv names the offending word in messages). Returns 0 when c was a shared
 * option and is recorded; CLI_DONE when --help or --version printed its text on stdout; ERR_INPUT
 * after printing the message, for a bad value ("prog: --seed: expected an integer >= 0, got 'x'"),
 * a missing value (c == ':', which needs ':' first in the optstring) or an unknown option (any
 * other c). */
int cli_common_opt(CliCommon *cc, int c, char **argv);
/* Append "key=value" to cc's assignments, after those already there: a shorthand flag (-K N is
 * sample.k=N) behaves exactly as the --set it stands for. */
void cli_common_set(CliCommon *cc, const char *key, const char *value);
/* The arguments from optind on are the inputs. */
void cli_common_inputs(CliCommon *cc, int argc, char **argv);
/* Build cfg as cli_config does from cc's --config and assignments, then store --seed, when given,
 * in *seed (the field of cfg that the schema's seed key names; NULL if the program has none). On
 * failure prints "prog: message", frees cfg and returns the exit code (cfg needs no config_free). */
int cli_common_config(const CliCommon *cc, const ConfigKey *schema, void *cfg, int64_t *seed);
/* Release cc's assignments. The strings the options pointed at belong to argv and stay. */
void cli_common_free(CliCommon *cc);

#endif
