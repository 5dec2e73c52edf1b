/* jsonl — see jsonl.h for the format and the contract of each call. */
#define _GNU_SOURCE /* getline */
#include "jsonl.h"

#include <errno.h>
#include <string.h>

#include "util.h"

struct JsonlReader {
    FILE *f;
    int owned; /* we opened f, so we close it */
    char *name;
    char *buf;
    size_t cap;
    int64_t line;
};

JsonlReader *jsonl_from_file(FILE *f, const char *name) {
    JsonlReader *r = xcalloc(1, sizeof *r);
    r->f = f;
    r->name = xstrdup(name);
    return r;
}

Err jsonl_open(JsonlReader **out, const char *path) {
    *out = NULL;
    if (strcmp(path, "-") == 0) {
        *out = jsonl_from_file(stdin, "<stdin>");
        return ERR_OK;
    }
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(ERR_INPUT, "%s: %s", path, strerror(errno));
    *out = jsonl_from_file(f, path);
    (*out)->owned = 1;
    return ERR_OK;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

Err jsonl_next(JsonlReader *r, json_t **out, int64_t *line) {
    *out = NULL;
    for (;;) {
        errno = 0;
        ssize_t n = getline(&r->buf, &r->cap, r->f);
        if (n < 0) {
            if (ferror(r->f)) return err_set(ERR_RUNTIME, "%s:%lld: read error: %s", r->name,
                                             (long long)r->line + 1, strerror(errno));
            return ERR_OK; /* end of input */
        }
        r->line++;
        *line = r->line;
        size_t len = (size_t)n;
        if (len && r->buf[len - 1] == '\n') len--;
        if (len && r->buf[len - 1] == '\r') len--;
        if (is_blank(r->buf, len)) continue;
        json_error_t je;
        json_t *v = json_loadb(r->buf, len, 0, &je);
        if (!v) return err_set(ERR_INPUT, "%s:%lld: invalid JSON at column %d: %s", r->name,
                               (long long)r->line, je.column, je.text);
        *out = v;
        return ERR_OK;
    }
}

const char *jsonl_name(const JsonlReader *r) { return r->name; }

void jsonl_close(JsonlReader *r) {
    if (!r) return;
    if (r->owned) fclose(r->f);
    free(r->buf);
    free(r->name);
    free(r);
}

Err jsonl_write(FILE *f, const json_t *v) {
    /* JSON_COMPACT keeps one record per line; jansson escapes '\n' inside strings. */
    if (json_dumpf(v, f, JSON_COMPACT) != 0 || fputc('\n', f) == EOF)
        return err_set(ERR_RUNTIME, "writing JSONL: %s", strerror(errno));
    return ERR_OK;
}
