/* jsonl — see jsonl.h for the format and the contract of each call. */
#define _GNU_SOURCE /* getline */
#include "jsonl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
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
    char *s = jsonl_dumps(v, JSON_COMPACT);
    if (!s) return err_set(ERR_RUNTIME, "writing JSONL: cannot encode the record");
    int bad = fputs(s, f) == EOF || fputc('\n', f) == EOF;
    free(s);
    return bad ? err_set(ERR_RUNTIME, "writing JSONL: %s", strerror(errno)) : ERR_OK;
}

/* ---- reals ----------------------------------------------------------------------------------------
 * jansson prints every real with one precision, 17 digits by default: exact, but 0.7 comes out as
 * 0.69999999999999996. It has no hook to format a single value, so jsonl_dumps lets it write the
 * exact 17-digit text and then rewrites each real. A decimal of at most 15 significant digits comes
 * back unchanged through double and %.15g (DBL_DIG), so when %.15g reads back exactly it is the
 * shortest text there is for any normal double (trailing zeros are dropped); otherwise 16 digits,
 * and 17 always read back. (printf and strtod in the C locale: no program calls setlocale.) */

/* x as the shortest of %.15g, %.16g, %.17g that strtod turns back into x, spelled as jansson
 * spells reals: a '.' or an exponent always (so it reads back as a real), no '+' and no leading
 * zeros in the exponent. At most 24 bytes and the '\0' go into buf[32]; returns the length. */
static size_t real_text(char buf[32], double x) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    if (!strchr(buf, '.') && !strchr(buf, 'e')) strcat(buf, ".0");
    char *e = strchr(buf, 'e');
    if (e) {
        char *from = e + 1, *to = e + 1;
        if (*from == '+') from++;
        else if (*from == '-') from++, to++;
        while (*from == '0' && from[1]) from++;
        memmove(to, from, strlen(from) + 1);
    }
    return strlen(buf);
}

char *jsonl_dumps(const json_t *v, size_t flags) {
    char *in = json_dumps(v, flags & ~(size_t)JSON_REAL_PRECISION(31));
    if (!in) return NULL;
    /* A rewritten real is at most 24 bytes ("-2.2250738585072014e-308") and its 17-digit original
     * at least 3 ("1.0"), so out has room for each to grow by 21. Counting every '.' and 'e' outside
     * strings counts each real at least once (and true and false too, which only wastes room). */
    size_t n = strlen(in), reals = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        if (in_string) {
            if (in[i] == '\\') i++;
            else if (in[i] == '"') in_string = false;
        } else if (in[i] == '"') in_string = true;
        else if (in[i] == '.' || in[i] == 'e' || in[i] == 'E') reals++;
    }
    char *out = xmalloc(n + 21 * reals + 1), *o = out;
    in_string = false;
    for (size_t i = 0; i < n;) {
        char c = in[i];
        if (in_string || c == '"') { /* copy a string's bytes, escapes and all */
            if (in_string && c == '\\') *o++ = in[i++];
            else if (c == '"') in_string = !in_string;
            *o++ = in[i++];
            continue;
        }
        if (c != '-' && (c < '0' || c > '9')) {
            *o++ = in[i++];
            continue;
        }
        size_t len = strspn(in + i, "0123456789+-.eE");
        if (strcspn(in + i, ".eE") < len) { /* a real: jansson never writes an integer with . or e */
            char buf[32];
            size_t m = real_text(buf, strtod(in + i, NULL));
            memcpy(o, buf, m);
            o += m;
        } else {
            memcpy(o, in + i, len);
            o += len;
        }
        i += len;
    }
    *o = '\0';
    free(in);
    return out;
}
