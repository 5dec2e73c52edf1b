/*
 * jsonl — line-numbered JSON Lines reading and writing (jansson).
 *
 * A JSONL file holds one JSON value per line, UTF-8, lines ended by '\n' (a '\r' before it is
 * dropped, so files written on Windows read the same). Blank lines are skipped but still counted,
 * so the line numbers in messages are the ones an editor shows. "-" names stdin (shown as
 * "<stdin>" in messages). Lines may be of any length (getline grows the buffer).
 *
 *     JsonlReader *r; json_t *v; int64_t line; Err rc;
 *     if ((rc = jsonl_open(&r, path)) != ERR_OK) return rc;
 *     while ((rc = jsonl_next(r, &v, &line)) == ERR_OK && v) { ...; json_decref(v); }
 *     jsonl_close(r);
 *
 * jsonl_next fails with ERR_INPUT and the message "file:line: what is wrong" on a malformed line
 * (jansson also rejects invalid UTF-8 and NUL bytes), with ERR_RUNTIME on a read error. After an
 * ERR_INPUT the reader can go on with the next line, which is what `--skip-bad` needs.
 */
#ifndef RLHF_JSONL_H
#define RLHF_JSONL_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

typedef struct JsonlReader JsonlReader;

/* Open path for reading ("-" = stdin, which is not closed by jsonl_close). */
Err jsonl_open(JsonlReader **out, const char *path);
/* Read an already open stream; name is used in messages. The stream stays the caller's. */
JsonlReader *jsonl_from_file(FILE *f, const char *name);
/* Next value: *out = new reference (caller decrefs) and *line = its line number, or *out = NULL at
 * the end of the input. */
Err jsonl_next(JsonlReader *r, json_t **out, int64_t *line);
/* The name used in messages ("data/x.jsonl" or "<stdin>"). */
const char *jsonl_name(const JsonlReader *r);
void jsonl_close(JsonlReader *r);

/* Write v as one compact line (keys in insertion order, UTF-8 kept as is) followed by '\n', with
 * reals as jsonl_dumps writes them. */
Err jsonl_write(FILE *f, const json_t *v);
/* json_dumps(v, flags), but every real in the fewest of 15, 16 or 17 significant digits that read
 * back as exactly the same double: 0.7 is "0.7" (jansson alone writes 0.69999999999999996), a
 * float32 score promoted to double keeps the 16 or 17 digits it needs, 1/3 gets 16. Reals are
 * otherwise spelled as jansson spells them ("1.0", "1e-7"), integers and strings are untouched, and
 * a JSON_REAL_PRECISION in flags is ignored. NULL when json_dumps fails; free() the text. */
char *jsonl_dumps(const json_t *v, size_t flags);

#endif
