#include "safetensors.h"

#include <jansson.h>
#include <string.h>

#include "util.h"

static const char *dtype_names[] = {"F32", "I32"};

static Err bad(const SafeTensors *st, const char *what) {
    return err_set(ERR_INPUT, "%s: not a valid safetensors file: %s", st->path, what);
}

static int cmp_begin(const void *a, const void *b) {
    const StTensor *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static Err parse_tensor(SafeTensors *st, const char *name, json_t *v, StTensor *t) {
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) ||
        json_array_size(offs) != 2)
        return err_set(ERR_INPUT, "%s: tensor '%s': needs dtype, shape and data_offsets [begin, end]", st->path, name);
    t->name = xstrdup(name);
    const char *d = json_string_value(dt);
    if (strcmp(d, "F32") == 0)
        t->dtype = ST_F32;
    else if (strcmp(d, "I32") == 0)
        t->dtype = ST_I32;
    else
        return err_set(ERR_INPUT, "%s: tensor '%s': dtype %s is not supported (F32 and I32 are)", st->path, name, d);
    t->ndim = (int)json_array_size(shape);
    if (t->ndim > ST_MAX_DIMS) return err_set(ERR_INPUT, "%s: tensor '%s': more than %d dimensions", st->path, name, ST_MAX_DIMS);
    t->numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        json_t *s = json_array_get(shape, i);
        if (!json_is_integer(s) || json_integer_value(s) < 0)
            return err_set(ERR_INPUT, "%s: tensor '%s': shape must hold non-negative integers", st->path, name);
        t->shape[i] = json_integer_value(s);
        t->numel *= (size_t)t->shape[i];
    }
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b))
        return err_set(ERR_INPUT, "%s: tensor '%s': bad data_offsets", st->path, name);
    t->begin = (size_t)json_integer_value(b);
    t->end = (size_t)json_integer_value(e);
    if (t->end > st->data_size)
        return err_set(ERR_INPUT, "%s: tensor '%s': data ends at byte %zu but the file holds %zu (truncated?)",
                       st->path, name, t->end, st->data_size);
    if (t->end - t->begin != t->numel * 4)
        return err_set(ERR_INPUT, "%s: tensor '%s': %zu bytes of data for shape of %zu elements", st->path, name,
                       t->end - t->begin, t->numel);
    return ERR_OK;
}

Err safetensors_open(SafeTensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    st->path = xstrdup(path);
    Err rc = file_map(&st->file, path);
    if (rc) {
        free(st->path);
        st->path = NULL;
        return rc;
    }
    const uint8_t *p = st->file.data;
    if (st->file.size < 8) {
        rc = bad(st, "shorter than its 8-byte header size");
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
    if (hlen > st->file.size - 8) {
        rc = err_set(ERR_INPUT, "%s: header of %llu bytes runs past the end of the file (%zu bytes; truncated?)", path,
                     (unsigned long long)hlen, st->file.size);
        goto fail;
    }
    st->data = p + 8 + hlen;
    st->data_size = st->file.size - 8 - hlen;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)p + 8, hlen, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        rc = err_set(ERR_INPUT, "%s: header is not a JSON object: %s", path, root ? "" : jerr.text);
        goto fail;
    }
    size_t n = json_object_size(root);
    st->tensors = xcalloc(n, sizeof(StTensor));
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                rc = bad(st, "__metadata__ is not an object");
                break;
            }
            size_t m = json_object_size(v);
            st->meta_keys = xcalloc(m, sizeof(char *));
            st->meta_values = xcalloc(m, sizeof(char *));
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = err_set(ERR_INPUT, "%s: __metadata__ value of '%s' is not a string", path, mk);
                    break;
                }
                st->meta_keys[st->n_meta] = xstrdup(mk);
                st->meta_values[st->n_meta++] = xstrdup(json_string_value(mv));
            }
            if (rc) break;
            continue;
        }
        if ((rc = parse_tensor(st, key, v, &st->tensors[st->n_tensors++])) != ERR_OK) break;
    }
    json_decref(root);
    if (rc) goto fail;
    /* tensors must not overlap (the format's own rule); checked on a sorted copy */
    StTensor *sorted = xmalloc(sizeof(StTensor) * (st->n_tensors ? st->n_tensors : 1));
    memcpy(sorted, st->tensors, sizeof(StTensor) * st->n_tensors);
    qsort(sorted, st->n_tensors, sizeof(StTensor), cmp_begin);
    for (int i = 1; i < st->n_tensors; i++)
        if (sorted[i].begin < sorted[i - 1].end && sorted[i].end > sorted[i].begin) {
            rc = err_set(ERR_INPUT, "%s: tensors '%s' and '%s' overlap", path, sorted[i - 1].name, sorted[i].name);
            break;
        }
    free(sorted);
    if (rc) goto fail;
    return ERR_OK;
fail:
    safetensors_close(st);
    return rc;
}

void safetensors_close(SafeTensors *st) {
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    file_unmap(&st->file);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const StTensor *safetensors_find(const SafeTensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const void *safetensors_data(const SafeTensors *st, const StTensor *t) { return st->data + t->begin; }

Err safetensors_read(const SafeTensors *st, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                     void *out) {
    const StTensor *t = safetensors_find(st, name);
    if (!t) return err_set(ERR_INPUT, "%s: tensor '%s' is missing", st->path, name);
    if (t->dtype != dtype)
        return err_set(ERR_INPUT, "%s: tensor '%s' is %s, expected %s", st->path, name, dtype_names[t->dtype],
                       dtype_names[dtype]);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char want[128] = "", got[128] = "";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "", (long long)shape[i]);
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        return err_set(ERR_INPUT, "%s: tensor '%s' has shape [%s], expected [%s]", st->path, name, got, want);
    }
    memcpy(out, safetensors_data(st, t), t->end - t->begin);
    return ERR_OK;
}

const char *safetensors_meta(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

Err safetensors_write(const char *path, const StEntry *entries, int n, const char *const *meta, int n_meta) {
    json_t *root = json_object();
    if (n_meta > 0) {
        json_t *m = json_object();
        for (int i = 0; i < n_meta; i++) json_object_set_new(m, meta[2 * i], json_string(meta[2 * i + 1]));
        json_object_set_new(root, "__metadata__", m);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const StEntry *e = &entries[i];
        size_t numel = 1;
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) {
            json_array_append_new(shape, json_integer(e->shape[d]));
            numel *= (size_t)e->shape[d];
        }
        json_t *t = json_object();
        json_object_set_new(t, "dtype", json_string(dtype_names[e->dtype]));
        json_object_set_new(t, "shape", shape);
        json_object_set_new(t, "data_offsets", json_pack("[I, I]", (json_int_t)off, (json_int_t)(off + numel * 4)));
        json_object_set_new(root, e->name, t);
        off += numel * 4;
    }
    char *header = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8;
    AtomicFile af;
    Err rc = atomic_open(&af, path);
    if (rc) {
        free(header);
        return rc;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, af.f) == 8 && fwrite(header, 1, hlen, af.f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', af.f) != EOF;
    for (int i = 0; ok && i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < entries[i].ndim; d++) numel *= (size_t)entries[i].shape[d];
        ok = fwrite(entries[i].data, 4, numel, af.f) == numel;
    }
    free(header);
    if (!ok) {
        atomic_abort(&af);
        return err_set(ERR_RUNTIME, "%s: write failed", path);
    }
    return atomic_commit(&af);
}
