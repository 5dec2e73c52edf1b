/*
 * config — schema-driven YAML loading (see config.h for the API and the file format).
 *
 * A file is read whole with libyaml's document API, so that `include:` can be applied before the
 * file's own keys wherever it appears, and every node keeps its line for error messages. The tree
 * is walked with a growing dotted path: a path equal to a schema key is a value, a path that is a
 * prefix of schema keys is a section (must be a mapping), anything else is an unknown key.
 * Values from YAML scalars and from `--set` go through the same text parsers, so both accept the
 * same spellings and give the same messages.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "util.h"

/* Deeper include chains than this are almost surely a cycle (a.yaml includes b.yaml includes a.yaml). */
#define CONFIG_MAX_INCLUDE_DEPTH 16

/* ---------------------------------------------------------------- schema helpers */

static size_t schema_len(const ConfigKey *schema) {
    size_t n = 0;
    while (schema[n].key) n++;
    return n;
}

static void *field(const ConfigKey *k, void *cfg) { return (char *)cfg + k->offset; }
static const void *cfield(const ConfigKey *k, const void *cfg) { return (const char *)cfg + k->offset; }

static bool has_range(const ConfigKey *k) { return k->min < k->max; }

static const ConfigKey *schema_find(const ConfigKey *schema, const char *path) {
    for (const ConfigKey *k = schema; k->key; k++)
        if (strcmp(k->key, path) == 0) return k;
    return NULL;
}

/* True when path names a section: some key starts with "path.". */
static bool schema_is_section(const ConfigKey *schema, const char *path) {
    size_t n = strlen(path);
    for (const ConfigKey *k = schema; k->key; k++)
        if (strncmp(k->key, path, n) == 0 && k->key[n] == '.') return true;
    return false;
}

static const char *type_name(ConfigType t) {
    switch (t) {
    case CONFIG_INT: return "int";
    case CONFIG_FLOAT: return "float";
    case CONFIG_BOOL: return "bool";
    case CONFIG_STRING: return "string";
    case CONFIG_ENUM: return "enum";
    case CONFIG_STRLIST: return "list of strings";
    case CONFIG_NUMLIST: return "list of numbers";
    }
    return "?";
}

static void strlist_clear(ConfigStrList *l) {
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void numlist_clear(ConfigNumList *l) {
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void value_free(const ConfigKey *k, void *cfg) {
    switch (k->type) {
    case CONFIG_STRING:
    case CONFIG_ENUM: {
        char **s = field(k, cfg);
        free(*s);
        *s = NULL;
        break;
    }
    case CONFIG_STRLIST: strlist_clear(field(k, cfg)); break;
    case CONFIG_NUMLIST: numlist_clear(field(k, cfg)); break;
    default: break;
    }
}

/* ---------------------------------------------------------------- scalar parsing */

/* `where` is "file:line" or "--set"; every message reads "<where>: <key>: <what>". */

static Err parse_int(const ConfigKey *k, const char *where, const char *text, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || errno == ERANGE)
        return err_set(ERR_INPUT, "%s: %s: expected an integer, got '%s'", where, k->key, text);
    if (has_range(k) && (v < k->min || v > k->max))
        return err_set(ERR_INPUT, "%s: %s: %lld is out of range [%.17g, %.17g]", where, k->key, v, k->min,
                       k->max);
    *out = (int64_t)v;
    return ERR_OK;
}

static Err parse_float(const ConfigKey *k, const char *where, const char *text, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || !isfinite(v) || errno == ERANGE)
        return err_set(ERR_INPUT, "%s: %s: expected a number, got '%s'", where, k->key, text);
    if (has_range(k) && (v < k->min || v > k->max))
        return err_set(ERR_INPUT, "%s: %s: %s is out of range [%.17g, %.17g]", where, k->key, text, k->min,
                       k->max);
    *out = v;
    return ERR_OK;
}

static Err parse_bool(const ConfigKey *k, const char *where, const char *text, bool *out) {
    static const char *yes[] = {"true", "yes", "on"}, *no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(text, yes[i]) == 0) return *out = true, ERR_OK;
        if (strcasecmp(text, no[i]) == 0) return *out = false, ERR_OK;
    }
    return err_set(ERR_INPUT, "%s: %s: expected true or false, got '%s'", where, k->key, text);
}

static bool enum_allows(const char *choices, const char *text) {
    size_t n = strlen(text);
    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, text, n) == 0) return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

/* Store a scalar value into a non-list key. */
static Err set_scalar(const ConfigKey *k, void *cfg, const char *where, const char *text) {
    switch (k->type) {
    case CONFIG_INT: return parse_int(k, where, text, field(k, cfg));
    case CONFIG_FLOAT: return parse_float(k, where, text, field(k, cfg));
    case CONFIG_BOOL: return parse_bool(k, where, text, field(k, cfg));
    case CONFIG_ENUM:
        if (!enum_allows(k->choices, text))
            return err_set(ERR_INPUT, "%s: %s: expected one of %s, got '%s'", where, k->key, k->choices, text);
        /* fallthrough */
    case CONFIG_STRING: {
        char **s = field(k, cfg);
        free(*s);
        *s = xstrdup(text);
        return ERR_OK;
    }
    default: ASSERT(!"set_scalar on a list key"); return ERR_RUNTIME;
    }
}

/* ---------------------------------------------------------------- YAML nodes */

typedef struct {
    const char *file; /* for messages: the path as given */
    yaml_document_t *doc;
} Src;

static int node_line(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

static void where_of(char *buf, size_t cap, const Src *src, const yaml_node_t *n) {
    snprintf(buf, cap, "%s:%d", src->file, node_line(n));
}

/* The scalar's text, or NULL (with an error set) when it holds a NUL byte we could not store. */
static const char *scalar_text(const Src *src, const yaml_node_t *n, const char *key) {
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length)
        return err_set(ERR_INPUT, "%s:%d: %s: value contains a NUL byte", src->file, node_line(n), key), NULL;
    return s;
}

static const char *node_kind(const yaml_node_t *n) {
    return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list" : "a scalar";
}

/* Store node (scalar, or sequence for list keys) into key k. */
static Err set_node(const ConfigKey *k, void *cfg, const Src *src, yaml_node_t *n) {
    char where[1024];
    where_of(where, sizeof where, src, n);
    bool is_list = k->type == CONFIG_STRLIST || k->type == CONFIG_NUMLIST;
    if (!is_list) {
        if (n->type != YAML_SCALAR_NODE)
            return err_set(ERR_INPUT, "%s: %s: expected %s %s, got %s", where, k->key,
                           k->type == CONFIG_INT || k->type == CONFIG_ENUM ? "an" : "a", type_name(k->type),
                           node_kind(n));
        const char *text = scalar_text(src, n, k->key);
        return text ? set_scalar(k, cfg, where, text) : ERR_INPUT;
    }
    /* A list key also takes a single scalar as a one-element list, or an empty value as []. */
    yaml_node_item_t *items = NULL;
    size_t count = 0;
    if (n->type == YAML_SEQUENCE_NODE) {
        items = n->data.sequence.items.start;
        count = (size_t)(n->data.sequence.items.top - items);
    } else if (n->type == YAML_SCALAR_NODE) {
        bool empty_plain = n->data.scalar.length == 0 && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (!empty_plain) {
            count = 1; /* the loop below reads the scalar itself */
        }
    } else {
        return err_set(ERR_INPUT, "%s: %s: expected a %s, got a mapping", where, k->key, type_name(k->type));
    }
    char **strs = k->type == CONFIG_STRLIST ? xcalloc(count ? count : 1, sizeof *strs) : NULL;
    double *nums = k->type == CONFIG_NUMLIST ? xcalloc(count ? count : 1, sizeof *nums) : NULL;
    Err rc = ERR_OK;
    for (size_t i = 0; i < count && rc == ERR_OK; i++) {
        yaml_node_t *it = items ? yaml_document_get_node(src->doc, items[i]) : n;
        char iw[1024];
        where_of(iw, sizeof iw, src, it);
        if (it->type != YAML_SCALAR_NODE) {
            rc = err_set(ERR_INPUT, "%s: %s: list items must be scalars, got %s", iw, k->key, node_kind(it));
            break;
        }
        const char *text = scalar_text(src, it, k->key);
        if (!text) rc = ERR_INPUT;
        else if (strs) strs[i] = xstrdup(text);
        else rc = parse_float(k, iw, text, &nums[i]);
    }
    if (rc != ERR_OK) {
        if (strs)
            for (size_t i = 0; i < count; i++) free(strs[i]);
        free(strs);
        free(nums);
        return rc;
    }
    value_free(k, cfg);
    if (strs) *(ConfigStrList *)field(k, cfg) = (ConfigStrList){count, strs};
    else *(ConfigNumList *)field(k, cfg) = (ConfigNumList){count, nums};
    return ERR_OK;
}

/* ---------------------------------------------------------------- files */

static Err parse_yaml(yaml_document_t *doc, const char *name, FILE *fp, const char *text) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return err_set(ERR_RUNTIME, "%s: cannot initialise the YAML parser", name);
    if (fp) yaml_parser_set_input_file(&p, fp);
    else yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    Err rc = ERR_OK;
    if (!yaml_parser_load(&p, doc)) {
        /* A one-line --set value has no useful line number; a file does. */
        char where[1024];
        if (fp) snprintf(where, sizeof where, "%s:%d", name, (int)p.problem_mark.line + 1);
        else snprintf(where, sizeof where, "%s", name);
        if (p.context && fp)
            rc = err_set(ERR_INPUT, "%s: malformed YAML: %s (%s, line %d)", where, p.problem ? p.problem : "error",
                         p.context, (int)p.context_mark.line + 1);
        else
            rc = err_set(ERR_INPUT, "%s: malformed YAML: %s", where, p.problem ? p.problem : "error");
    } else {
        /* A config is one document; a second one is almost surely a stray `---`. */
        yaml_document_t extra;
        if (!yaml_parser_load(&p, &extra)) {
            rc = err_set(ERR_INPUT, "%s:%d: malformed YAML: %s", name, (int)p.problem_mark.line + 1,
                         p.problem ? p.problem : "error");
            yaml_document_delete(doc);
        } else {
            yaml_node_t *root2 = yaml_document_get_root_node(&extra);
            if (root2) {
                rc = err_set(ERR_INPUT, "%s:%d: more than one YAML document", name, node_line(root2));
                yaml_document_delete(doc);
            }
            yaml_document_delete(&extra);
        }
    }
    yaml_parser_delete(&p);
    return rc;
}

static Err load_file(const ConfigKey *schema, void *cfg, const char *path, int depth);

/* Walk a mapping at `prefix` ("" at the root); seen[] marks keys set by this file. */
static Err walk_mapping(const ConfigKey *schema, void *cfg, const Src *src, yaml_node_t *map, const char *prefix,
                        bool *seen) {
    yaml_node_pair_t *pairs = map->data.mapping.pairs.start;
    size_t np = (size_t)(map->data.mapping.pairs.top - pairs);
    for (size_t i = 0; i < np; i++) {
        yaml_node_t *kn = yaml_document_get_node(src->doc, pairs[i].key);
        yaml_node_t *vn = yaml_document_get_node(src->doc, pairs[i].value);
        if (kn->type != YAML_SCALAR_NODE)
            return err_set(ERR_INPUT, "%s:%d: keys must be plain names, got %s", src->file, node_line(kn),
                           node_kind(kn));
        const char *name = (const char *)kn->data.scalar.value;
        if (!*name) return err_set(ERR_INPUT, "%s:%d: empty key", src->file, node_line(kn));
        for (size_t j = 0; j < i; j++) {
            yaml_node_t *prev = yaml_document_get_node(src->doc, pairs[j].key);
            if (prev->type == YAML_SCALAR_NODE && strcmp((const char *)prev->data.scalar.value, name) == 0)
                return err_set(ERR_INPUT, "%s:%d: duplicate key '%s%s%s' (first at line %d)", src->file,
                               node_line(kn), prefix, *prefix ? "." : "", name, node_line(prev));
        }
        if (!*prefix && strcmp(name, "include") == 0) continue; /* handled by load_file */
        size_t plen = strlen(prefix) + 1 + strlen(name) + 1;
        char *path = xmalloc(plen);
        snprintf(path, plen, "%s%s%s", prefix, *prefix ? "." : "", name);
        Err rc = ERR_OK;
        const ConfigKey *k = schema_find(schema, path);
        if (k) {
            size_t idx = (size_t)(k - schema);
            if (seen[idx])
                rc = err_set(ERR_INPUT, "%s:%d: duplicate key '%s'", src->file, node_line(kn), path);
            else {
                seen[idx] = true;
                rc = set_node(k, cfg, src, vn);
            }
        } else if (schema_is_section(schema, path)) {
            if (vn->type == YAML_MAPPING_NODE) rc = walk_mapping(schema, cfg, src, vn, path, seen);
            else
                rc = err_set(ERR_INPUT, "%s:%d: '%s' is a section: expected a mapping, got %s", src->file,
                             node_line(vn), path, node_kind(vn));
        } else {
            rc = err_set(ERR_INPUT, "%s:%d: unknown key '%s'", src->file, node_line(kn), path);
        }
        free(path);
        if (rc != ERR_OK) return rc;
    }
    return ERR_OK;
}

/* Load one include target named in `src` at node n, relative to the including file's folder. */
static Err load_include(const ConfigKey *schema, void *cfg, const Src *src, yaml_node_t *n, int depth) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.length == 0)
        return err_set(ERR_INPUT, "%s:%d: include: expected a file name, got %s", src->file, node_line(n),
                       n->type == YAML_SCALAR_NODE ? "nothing" : node_kind(n));
    const char *name = scalar_text(src, n, "include");
    if (!name) return ERR_INPUT;
    const char *slash = strrchr(src->file, '/');
    size_t dirlen = (name[0] != '/' && slash) ? (size_t)(slash - src->file) + 1 : 0;
    size_t cap = dirlen + strlen(name) + 1;
    char *path = xmalloc(cap);
    memcpy(path, src->file, dirlen);
    strcpy(path + dirlen, name);
    Err rc;
    if (depth + 1 > CONFIG_MAX_INCLUDE_DEPTH)
        rc = err_set(ERR_INPUT, "%s:%d: include '%s': includes nested deeper than %d (a cycle?)", src->file,
                     node_line(n), name, CONFIG_MAX_INCLUDE_DEPTH);
    else if ((rc = load_file(schema, cfg, path, depth + 1)) != ERR_OK)
        err_prefix(rc, "%s:%d: include '%s': ", src->file, node_line(n), name);
    free(path);
    return rc;
}

static Err load_file(const ConfigKey *schema, void *cfg, const char *path, int depth) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return err_set(ERR_INPUT, "cannot open %s: %s", path, strerror(errno));
    yaml_document_t doc;
    Err rc = parse_yaml(&doc, path, fp, NULL);
    fclose(fp);
    if (rc != ERR_OK) return rc;
    Src src = {path, &doc};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    bool *seen = xcalloc(schema_len(schema) + 1, sizeof *seen);
    if (!root) {
        /* an empty file sets nothing */
    } else if (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0) {
        /* a file of comments only */
    } else if (root->type != YAML_MAPPING_NODE) {
        rc = err_set(ERR_INPUT, "%s:%d: expected a mapping of keys at the top, got %s", path, node_line(root),
                     node_kind(root));
    } else {
        /* Includes first, wherever they appear, so that this file's values override them. */
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top && !rc; p++) {
            yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
            if (kn->type != YAML_SCALAR_NODE || strcmp((const char *)kn->data.scalar.value, "include") != 0)
                continue;
            yaml_node_t *vn = yaml_document_get_node(&doc, p->value);
            if (vn->type == YAML_SEQUENCE_NODE) {
                for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top && !rc;
                     it++)
                    rc = load_include(schema, cfg, &src, yaml_document_get_node(&doc, *it), depth);
            } else {
                rc = load_include(schema, cfg, &src, vn, depth);
            }
        }
        if (rc == ERR_OK) rc = walk_mapping(schema, cfg, &src, root, "", seen);
    }
    free(seen);
    yaml_document_delete(&doc);
    return rc;
}

Err config_load(const ConfigKey *schema, void *cfg, const char *path) {
    ASSERT(!schema_find(schema, "include")); /* the name is taken by the include directive */
    return load_file(schema, cfg, path, 0);
}

/* ---------------------------------------------------------------- overrides and defaults */

/* Parse `text` as YAML (lists only) and store it into k; `where` names the source for messages. */
static Err set_list_text(const ConfigKey *k, void *cfg, const char *where, const char *text) {
    yaml_document_t doc;
    Err rc = parse_yaml(&doc, where, NULL, text);
    if (rc != ERR_OK) return rc;
    Src src = {where, &doc};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) value_free(k, cfg); /* "key=" clears the list */
    else rc = set_node(k, cfg, &src, root);
    yaml_document_delete(&doc);
    return rc;
}

Err config_set(const ConfigKey *schema, void *cfg, const char *assignment) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return err_set(ERR_INPUT, "--set: expected key=value, got '%s'", assignment);
    size_t klen = (size_t)(eq - assignment);
    char *key = xmalloc(klen + 1);
    memcpy(key, assignment, klen);
    key[klen] = 0;
    const ConfigKey *k = schema_find(schema, key);
    Err rc;
    if (!k) rc = err_set(ERR_INPUT, "--set: unknown key '%s'", key);
    else if (k->type == CONFIG_STRLIST || k->type == CONFIG_NUMLIST) rc = set_list_text(k, cfg, "--set", eq + 1);
    else rc = set_scalar(k, cfg, "--set", eq + 1); /* raw text, so "a: b" stays a string */
    free(key);
    return rc;
}

void config_defaults(const ConfigKey *schema, void *cfg) {
    for (const ConfigKey *k = schema; k->key; k++) {
        ASSERT(k->type >= CONFIG_INT && k->type <= CONFIG_NUMLIST);
        ASSERT(k->type != CONFIG_ENUM || k->choices);
        switch (k->type) {
        case CONFIG_STRING:
        case CONFIG_ENUM: *(char **)field(k, cfg) = NULL; break;
        case CONFIG_STRLIST: *(ConfigStrList *)field(k, cfg) = (ConfigStrList){0, NULL}; break;
        case CONFIG_NUMLIST: *(ConfigNumList *)field(k, cfg) = (ConfigNumList){0, NULL}; break;
        default: break;
        }
        const char *def = k->def ? k->def : "";
        Err rc = (k->type == CONFIG_STRLIST || k->type == CONFIG_NUMLIST) ? set_list_text(k, cfg, "default", def)
                                                                         : set_scalar(k, cfg, "default", def);
        if (rc != ERR_OK) fprintf(stderr, "config schema: %s\n", err_msg());
        ASSERT(rc == ERR_OK); /* a schema whose default does not parse is a bug in the program */
    }
}

void config_free(const ConfigKey *schema, void *cfg) {
    for (const ConfigKey *k = schema; k->key; k++) value_free(k, cfg);
}

/* ---------------------------------------------------------------- help and dump */

void config_print_help(const ConfigKey *schema, FILE *f) {
    for (const ConfigKey *k = schema; k->key; k++) {
        char extra[256] = "";
        if (k->type == CONFIG_ENUM) snprintf(extra, sizeof extra, " (one of %s)", k->choices);
        else if (has_range(k) && (k->type == CONFIG_INT || k->type == CONFIG_FLOAT || k->type == CONFIG_NUMLIST))
            snprintf(extra, sizeof extra, " (range [%g, %g])", k->min, k->max);
        const char *def = k->def && *k->def ? k->def : "\"\"";
        fprintf(f, "  %-28s %-15s default %-10s %s%s\n", k->key, type_name(k->type), def, k->help ? k->help : "",
                extra);
    }
}

/* Shortest text that reads back to exactly v. */
static void print_double(FILE *f, double v) {
    char buf[64];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    fputs(buf, f);
}

/* Always double-quoted, so no string is ever mistaken for a number, a bool or YAML syntax. */
static void print_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\x%02x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void print_value(const ConfigKey *k, const void *cfg, FILE *f) {
    const void *v = cfield(k, cfg);
    switch (k->type) {
    case CONFIG_INT: fprintf(f, "%lld", (long long)*(const int64_t *)v); break;
    case CONFIG_FLOAT: print_double(f, *(const double *)v); break;
    case CONFIG_BOOL: fputs(*(const bool *)v ? "true" : "false", f); break;
    case CONFIG_STRING:
    case CONFIG_ENUM: print_string(f, *(char *const *)v ? *(char *const *)v : ""); break;
    case CONFIG_STRLIST: {
        const ConfigStrList *l = v;
        fputc('[', f);
        for (size_t i = 0; i < l->n; i++) {
            if (i) fputs(", ", f);
            print_string(f, l->items[i]);
        }
        fputc(']', f);
        break;
    }
    case CONFIG_NUMLIST: {
        const ConfigNumList *l = v;
        fputc('[', f);
        for (size_t i = 0; i < l->n; i++) {
            if (i) fputs(", ", f);
            print_double(f, l->items[i]);
        }
        fputc(']', f);
        break;
    }
    }
}

/* Emit every not-yet-done key under `prefix` (length plen), grouping sections so each appears once
 * even when the schema lists its keys apart. */
static void dump_group(const ConfigKey *schema, const void *cfg, FILE *f, const char *prefix, size_t plen,
                       int depth, bool *done) {
    for (size_t i = 0; schema[i].key; i++) {
        const char *key = schema[i].key;
        if (done[i] || strncmp(key, prefix, plen) != 0) continue;
        const char *rest = key + plen;
        const char *dot = strchr(rest, '.');
        fprintf(f, "%*s", 2 * depth, "");
        if (!dot) {
            fprintf(f, "%s: ", rest);
            print_value(&schema[i], cfg, f);
            fputc('\n', f);
            done[i] = true;
        } else {
            fprintf(f, "%.*s:\n", (int)(dot - rest), rest);
            dump_group(schema, cfg, f, key, (size_t)(dot - key) + 1, depth + 1, done);
        }
    }
}

void config_dump(const ConfigKey *schema, const void *cfg, FILE *f) {
    bool *done = xcalloc(schema_len(schema) + 1, sizeof *done);
    dump_group(schema, cfg, f, "", 0, 0, done);
    free(done);
}

char *config_dump_string(const ConfigKey *schema, const void *cfg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f);
    config_dump(schema, cfg, f);
    ASSERT(fclose(f) == 0);
    return buf;
}
