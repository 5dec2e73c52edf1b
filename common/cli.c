/* cli — see cli.h. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int cli_fail(const char *prog, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

void cli_print_version(const char *prog, const char *version) { printf("%s (rlhf.c) %s\n", prog, version); }

int cli_int(const char *prog, const char *opt, const char *s, int64_t lo, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo)
        return cli_fail(prog, ERR_INPUT, "%s: expected an integer >= %lld, got '%s'", opt, (long long)lo, s);
    *out = v;
    return 0;
}

Err cli_config(const ConfigKey *schema, void *cfg, const char *path, const char *const *sets, int nsets) {
    config_defaults(schema, cfg);
    Err rc = path ? config_load(schema, cfg, path) : ERR_OK;
    for (int i = 0; !rc && i < nsets; i++) rc = config_set(schema, cfg, sets[i]);
    return rc;
}

/* ---- the shared options ------------------------------------------------------------------------ */

void cli_common_init(CliCommon *cc, const char *prog, const char *version, void (*usage)(FILE *f), int argc) {
    *cc = (CliCommon){.prog = prog, .version = version, .usage = usage, .seed = -1, .iteration = -1};
    /* every word after argv[0] is at most one assignment, and -K N style flags are words too */
    cc->sets = xmalloc((size_t)(argc + 1) * sizeof *cc->sets);
    cc->owned = xmalloc((size_t)(argc + 1) * sizeof *cc->owned);
}

int cli_common_opt(CliCommon *cc, int c, char **argv) {
    int rc;
    int64_t v;
    switch (c) {
    case CLI_OPT_CONFIG: cc->config = optarg; return 0;
    case CLI_OPT_SET: cc->sets[cc->nsets++] = optarg; return 0;
    case CLI_OPT_SEED: return cli_int(cc->prog, "--seed", optarg, 0, &cc->seed);
    case CLI_OPT_THREADS:
        if ((rc = cli_int(cc->prog, "--threads", optarg, 1, &v))) return rc;
        cc->threads = (int)(v > 1024 ? 1024 : v);
        return 0;
    case CLI_OPT_DB: cc->db = optarg; return 0;
    case CLI_OPT_ITERATION: return cli_int(cc->prog, "--iteration", optarg, 0, &cc->iteration);
    case CLI_OPT_MODEL: cc->model = optarg; return 0;
    case CLI_OPT_HELP: cc->usage(stdout); return CLI_DONE;
    case CLI_OPT_VERSION: cli_print_version(cc->prog, cc->version); return CLI_DONE;
    case ':': return cli_fail(cc->prog, ERR_INPUT, "option '%s' needs a value (see --help)", argv[optind - 1]);
    default: return cli_fail(cc->prog, ERR_INPUT, "unknown option '%s' (see --help)", argv[optind - 1]);
    }
}

void cli_common_set(CliCommon *cc, const char *key, const char *value) {
    size_t n = strlen(key) + strlen(value) + 2;
    char *s = xmalloc(n);
    snprintf(s, n, "%s=%s", key, value);
    cc->owned[cc->nowned++] = s;
    cc->sets[cc->nsets++] = s;
}

void cli_common_inputs(CliCommon *cc, int argc, char **argv) {
    cc->inputs = argv + optind;
    cc->ninputs = argc - optind;
}

int cli_common_config(const CliCommon *cc, const ConfigKey *schema, void *cfg, int64_t *seed) {
    Err rc = cli_config(schema, cfg, cc->config, cc->sets, cc->nsets);
    if (rc) {
        cli_fail(cc->prog, rc, "%s", err_msg());
        config_free(schema, cfg);
        return rc;
    }
    if (seed && cc->seed >= 0) *seed = cc->seed;
    return 0;
}

void cli_common_free(CliCommon *cc) {
    for (int i = 0; i < cc->nowned; i++) free(cc->owned[i]);
    free(cc->owned);
    free(cc->sets);
    cc->owned = NULL;
    cc->sets = NULL;
    cc->nowned = cc->nsets = 0;
}
