/* cli — see cli.h. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int cli_fail(const char *prog, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

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
