/*
 * cli — the parts of a program's main that every rlhf.c program does the same way (DESIGN §7):
 * errors as one line "PROG: message" on stderr with the exit code, integer flags checked whole,
 * and the configuration built as defaults, then --config FILE, then each --set in order.
 */
#ifndef RLHF_CLI_H
#define RLHF_CLI_H

#include <stdint.h>

#include "config.h"
#include "err.h"

/* Print "prog: message" on stderr; returns code, so `return cli_fail(PROG, ERR_INPUT, ...)`. */
int cli_fail(const char *prog, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Parse the whole of s as a decimal integer >= lo into *out: 0, or ERR_INPUT after printing
 * "prog: OPT: expected an integer >= LO, got 'S'". */
int cli_int(const char *prog, const char *opt, const char *s, int64_t lo, int64_t *out);
/* Defaults, then the file at path (may be NULL), then each "key=value" of sets, into cfg. On
 * failure cfg still needs config_free, and err_msg names the file and line or --set. */
Err cli_config(const ConfigKey *schema, void *cfg, const char *path, const char *const *sets, int nsets);

#endif
