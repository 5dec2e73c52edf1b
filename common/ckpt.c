/*
 * ckpt — see ckpt.h for the directory layout and docs/formats.md for every field.
 *
 * Sections: paths and directories; config.json; tensors (model and optimizer safetensors);
 * save; load; llama2.c model.bin.
 */
#define _GNU_SOURCE /* renameat2(RENAME_EXCHANGE): swap a new checkpoint directory in with one call */
#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "jsonl.h"
#include "util.h"

/* ================================ paths and directories ================================ */

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *path_suffix(const char *dir, const char *suffix) {
    size_t n = strlen(dir) + strlen(suffix) + 1;
    char *p = xmalloc(n);
    snprintf(p, n, "%s%s", dir, suffix);
    return p;
}

static int path_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Removes a directory of plain files (what a checkpoint is); a missing directory is fine. */
static Err remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? ERR_OK : err_set(ERR_RUNTIME, "%s: cannot open: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *p = path_join(dir, e->d_name);
        unlink(p); /* a subdirectory makes rmdir fail below, which is reported */
        free(p);
    }
    closedir(d);
    if (rmdir(dir) != 0) return err_set(ERR_RUNTIME, "%s: cannot remove: %s", dir, strerror(errno));
    return ERR_OK;
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { /* a file system that cannot fsync a directory is no error */
        fsync(fd);
        close(fd);
    }
}

static void fsync_parent(const char *path) {
    char *p = xstrdup(path);
    char *slash = strrchr(p, '/');
    while (slash && slash > p && slash[1] == '\0') { /* "a/b/" */
        *slash = '\0';
        slash = strrchr(p, '/');
    }
    if (!slash)
        fsync_dir(".");
    else {
        slash[slash == p] = '\0'; /* "/x" -> "/" */
        fsync_dir(p);
    }
    free(p);
}

/* Puts the complete directory `tmp` at `dir`, replacing an old checkpoint there. */
static Err swap_into_place(const char *tmp, const char *dir) {
    if (rename(tmp, dir) == 0) { /* dir did not exist, or was an empty directory */
        fsync_parent(dir);
        return ERR_OK;
    }
    if (errno != ENOTEMPTY && errno != EEXIST)
        return err_set(ERR_RUNTIME, "%s: cannot rename %s into place: %s", dir, tmp, strerror(errno));
#ifdef RENAME_EXCHANGE
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
        fsync_parent(dir);
        return remove_dir(tmp); /* now holds the old checkpoint */
    }
#endif
    /* No atomic exchange here: move the old one aside first. A crash between the two renames leaves
     * no <dir> (loading fails loudly) next to complete <dir>.old and <dir>.tmp. */
    char *old = path_suffix(dir, ".old");
    Err rc = remove_dir(old);
    if (rc == ERR_OK && rename(dir, old) != 0)
        rc = err_set(ERR_RUNTIME, "%s: cannot move the old checkpoint aside: %s", dir, strerror(errno));
    if (rc == ERR_OK && rename(tmp, dir) != 0) {
        rc = err_set(ERR_RUNTIME, "%s: cannot rename %s into place: %s", dir, tmp, strerror(errno));
        rename(old, dir);
    }
    if (rc == ERR_OK) {
        fsync_parent(dir);
        rc = remove_dir(old);
    }
    free(old);
    return rc;
}

/* ====================================== config.json ====================================== */

/* The shortest decimal that reads back as f, as a double: config.json says 1e-05, not 9.99999974737875e-06. */
static double float_for_json(float f) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static json_t *config_to_json(const ModelConfig *c) {
    int scalar = c->head == HEAD_SCALAR;
    json_t *j = json_object();
    json_object_set_new(j, "architectures",
                        json_pack("[s]", scalar ? "LlamaForSequenceClassification" : "LlamaForCausalLM"));
    json_object_set_new(j, "model_type", json_string("llama"));
    json_object_set_new(j, "hidden_size", json_integer(c->dim));
    json_object_set_new(j, "intermediate_size", json_integer(c->hidden_dim));
    json_object_set_new(j, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(j, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(j, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(j, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(j, "max_position_embeddings", json_integer(c->max_seq_len));
    json_object_set_new(j, "rms_norm_eps", json_real(float_for_json(c->norm_eps)));
    json_object_set_new(j, "rope_theta", json_real(float_for_json(c->rope_theta)));
    json_object_set_new(j, "tie_word_embeddings", json_boolean(!scalar && c->tie_embeddings));
    json_object_set_new(j, "hidden_act", json_string("silu"));
    json_object_set_new(j, "attention_bias", json_false());
    json_object_set_new(j, "rope_scaling", json_null());
    json_object_set_new(j, "torch_dtype", json_string("float32"));
    json_object_set_new(j, "bos_token_id", json_integer(TOKENIZER_BOS));
    json_object_set_new(j, "eos_token_id", json_integer(TOKENIZER_EOS));
    if (scalar) {
        json_object_set_new(j, "num_labels", json_integer(1));
        json_object_set_new(j, "id2label", json_pack("{s:s}", "0", "LABEL_0"));
        json_object_set_new(j, "label2id", json_pack("{s:i}", "LABEL_0", 0));
        /* ours, not transformers': a reward model trained on shorter sequences than its context */
        if (c->score_len > 0 && c->score_len < c->max_seq_len)
            json_object_set_new(j, "rlhf_score_len", json_integer(c->score_len));
    }
    return j;
}

/* The JSON value of `key`, or NULL (with the error set) when it is required and missing. */
static json_t *config_get(json_t *j, const char *path, const char *key, int required, Err *rc) {
    json_t *v = json_object_get(j, key);
    if (!v && required) *rc = err_set(ERR_INPUT, "%s: key '%s' is missing", path, key);
    return v;
}

static Err config_int(json_t *j, const char *path, const char *key, int required, int *out) {
    Err rc = ERR_OK;
    json_t *v = config_get(j, path, key, required, &rc);
    if (!v) return rc;
    if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX)
        return err_set(ERR_INPUT, "%s: key '%s' must be an integer", path, key);
    *out = (int)json_integer_value(v);
    return ERR_OK;
}

static Err config_float(json_t *j, const char *path, const char *key, int required, float *out) {
    Err rc = ERR_OK;
    json_t *v = config_get(j, path, key, required, &rc);
    if (!v) return rc;
    if (!json_is_number(v)) return err_set(ERR_INPUT, "%s: key '%s' must be a number", path, key);
    *out = (float)json_number_value(v);
    return ERR_OK;
}

/* Keys whose other values would change the model in ways we do not implement. */
static Err config_unsupported(json_t *j, const char *path) {
    json_t *v;
    if ((v = json_object_get(j, "model_type")) && !(json_is_string(v) && strcmp(json_string_value(v), "llama") == 0))
        return err_set(ERR_INPUT, "%s: key 'model_type' must be \"llama\"", path);
    if ((v = json_object_get(j, "hidden_act")) && !(json_is_string(v) && strcmp(json_string_value(v), "silu") == 0))
        return err_set(ERR_INPUT, "%s: key 'hidden_act' must be \"silu\" (SwiGLU)", path);
    if ((v = json_object_get(j, "rope_scaling")) && !json_is_null(v))
        return err_set(ERR_INPUT, "%s: key 'rope_scaling' must be null (RoPE scaling is not implemented)", path);
    if ((v = json_object_get(j, "attention_bias")) && !json_is_false(v))
        return err_set(ERR_INPUT, "%s: key 'attention_bias' must be false", path);
    if ((v = json_object_get(j, "mlp_bias")) && !json_is_false(v))
        return err_set(ERR_INPUT, "%s: key 'mlp_bias' must be false", path);
    return ERR_OK;
}

static Err config_from_json(json_t *j, const char *path, ModelConfig *c) {
    memset(c, 0, sizeof *c);
    Err rc;
    json_t *arch = json_object_get(j, "architectures");
    if (!arch) return err_set(ERR_INPUT, "%s: key 'architectures' is missing", path);
    const char *a = json_string_value(json_array_get(arch, 0));
    if (!json_is_array(arch) || json_array_size(arch) != 1 || !a)
        return err_set(ERR_INPUT, "%s: key 'architectures' must be an array of one string", path);
    if (strcmp(a, "LlamaForCausalLM") == 0)
        c->head = HEAD_LM;
    else if (strcmp(a, "LlamaForSequenceClassification") == 0)
        c->head = HEAD_SCALAR;
    else
        return err_set(ERR_INPUT, "%s: key 'architectures': '%s' is neither LlamaForCausalLM nor "
                       "LlamaForSequenceClassification", path, a);
    if ((rc = config_int(j, path, "hidden_size", 1, &c->dim)) || (rc = config_int(j, path, "intermediate_size", 1, &c->hidden_dim)) ||
        (rc = config_int(j, path, "num_hidden_layers", 1, &c->n_layers)) ||
        (rc = config_int(j, path, "num_attention_heads", 1, &c->n_heads)) ||
        (rc = config_int(j, path, "vocab_size", 1, &c->vocab_size)) ||
        (rc = config_int(j, path, "max_position_embeddings", 1, &c->max_seq_len)) ||
        (rc = config_float(j, path, "rms_norm_eps", 1, &c->norm_eps)))
        return rc;
    /* transformers' defaults for the keys LlamaConfig may leave out */
    c->n_kv_heads = c->n_heads;
    c->rope_theta = 10000.0f;
    if ((rc = config_int(j, path, "num_key_value_heads", 0, &c->n_kv_heads)) ||
        (rc = config_float(j, path, "rope_theta", 0, &c->rope_theta)))
        return rc;
    json_t *tie = json_object_get(j, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie)) return err_set(ERR_INPUT, "%s: key 'tie_word_embeddings' must be true or false", path);
    c->tie_embeddings = c->head == HEAD_LM && json_is_true(tie);
    if (c->head == HEAD_SCALAR) {
        /* transformers writes id2label; we also write num_labels. Either must say one label. */
        json_t *nl = json_object_get(j, "num_labels"), *id2 = json_object_get(j, "id2label");
        if (nl && !(json_is_integer(nl) && json_integer_value(nl) == 1))
            return err_set(ERR_INPUT, "%s: key 'num_labels' must be 1 for a reward or value model", path);
        if (id2 && !(json_is_object(id2) && json_object_size(id2) == 1))
            return err_set(ERR_INPUT, "%s: key 'id2label' must have one label for a reward or value model", path);
        if (!nl && !id2) return err_set(ERR_INPUT, "%s: key 'num_labels' is missing (a reward model has 1)", path);
        if ((rc = config_int(j, path, "rlhf_score_len", 0, &c->score_len))) return rc;
        if (c->score_len != 0 && (c->score_len < 2 || c->score_len > c->max_seq_len))
            return err_set(ERR_INPUT, "%s: key 'rlhf_score_len' must be 2..max_position_embeddings (%d), got %d", path,
                           c->max_seq_len, c->score_len);
    }
    int head_dim = 0;
    if ((rc = config_int(j, path, "head_dim", 0, &head_dim))) return rc;
    if (head_dim && c->n_heads > 0 && head_dim * c->n_heads != c->dim)
        return err_set(ERR_INPUT, "%s: key 'head_dim' must be hidden_size / num_attention_heads", path);
    if ((rc = config_unsupported(j, path))) return rc;
    if ((rc = model_config_check(c))) return err_prefix(rc, "%s: ", path);
    return ERR_OK;
}

Err ckpt_read_config(const char *dir, ModelConfig *cfg) {
    char *path = path_join(dir, "config.json");
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    Err rc;
    if (!j)
        rc = path_exists(path) ? err_set(ERR_INPUT, "%s:%d: %s", path, jerr.line, jerr.text)
                               : err_set(ERR_INPUT, "%s: missing (is %s a checkpoint directory?)", path, dir);
    else if (!json_is_object(j))
        rc = err_set(ERR_INPUT, "%s: not a JSON object", path);
    else
        rc = config_from_json(j, path, cfg);
    json_decref(j);
    free(path);
    return rc;
}

/* Reals as jsonl_dumps writes them: the shortest text that reads back exactly. */
static Err json_write_atomic(const char *path, json_t *j, size_t flags) {
    AtomicFile af;
    Err rc = atomic_open(&af, path);
    if (rc) return rc;
    char *s = jsonl_dumps(j, flags);
    int bad = !s || fputs(s, af.f) == EOF || fputc('\n', af.f) == EOF;
    free(s);
    if (bad) {
        atomic_abort(&af);
        return err_set(ERR_RUNTIME, "%s: write failed", path);
    }
    return atomic_commit(&af);
}

/* ====================================== tensors ====================================== */

static const Model *sort_model; /* qsort has no context argument; saving is not called concurrently */
static int cmp_offset(const void *a, const void *b) {
    size_t x = sort_model->tensors[*(const int *)a].offset, y = sort_model->tensors[*(const int *)b].offset;
    return x < y ? -1 : x > y;
}

/* The table's indices in flat-buffer order (the table itself goes layer by layer, the buffer tensor
 * kind by kind). They cover the buffer without gaps, so a file written in this order is mappable as
 * the buffer itself. */
static int *flat_order(const Model *m) {
    int *order = xmalloc(sizeof(int) * (size_t)m->n_tensors);
    for (int i = 0; i < m->n_tensors; i++) order[i] = i;
    sort_model = m;
    qsort(order, (size_t)m->n_tensors, sizeof(int), cmp_offset);
    size_t off = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        ASSERT(m->tensors[order[i]].offset == off);
        off += m->tensors[order[i]].numel;
    }
    ASSERT(off == m->n_params);
    return order;
}

/* Writes buf (a flat buffer in m's layout) under prefix+name for every tensor, into entries[at...]. */
static void add_entries(StEntry *entries, char **names, int at, const Model *m, const char *prefix, const float *buf) {
    int *order = flat_order(m);
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[order[i]];
        size_t n = strlen(prefix) + strlen(t->name) + 1;
        names[at + i] = xmalloc(n);
        snprintf(names[at + i], n, "%s%s", prefix, t->name);
        entries[at + i] = (StEntry){.name = names[at + i], .dtype = ST_F32, .ndim = t->ndim, .data = buf + t->offset};
        for (int d = 0; d < t->ndim; d++) entries[at + i].shape[d] = t->shape[d];
    }
    free(order);
}

/* n_bufs flat buffers under n_bufs prefixes, in that order, to one safetensors file. */
static Err write_flat(const char *path, const Model *m, const char *const *prefixes, const float *const *bufs, int n_bufs,
                      const char *const *meta, int n_meta) {
    int n = m->n_tensors * n_bufs;
    StEntry *entries = xcalloc((size_t)n, sizeof(StEntry));
    char **names = xcalloc((size_t)n, sizeof(char *));
    for (int b = 0; b < n_bufs; b++) add_entries(entries, names, b * m->n_tensors, m, prefixes[b], bufs[b]);
    Err rc = safetensors_write(path, entries, n, meta, n_meta);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(entries);
    return rc;
}

static void shape_str(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* The file's tensor `name` as model tensor t expects it (F32, t's shape), or an error naming both. */
static Err find_checked(const SafeTensors *st, const char *name, const ModelTensor *t, const StTensor **out) {
    const StTensor *s = safetensors_find(st, name);
    if (!s) return err_set(ERR_INPUT, "%s: tensor '%s' is missing", st->path, name);
    if (s->dtype != ST_F32)
        return err_set(ERR_INPUT, "%s: tensor '%s' has dtype %s, expected F32 (float32)", st->path, name,
                       s->dtype == ST_I32 ? "I32" : "?");
    int same = s->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = s->shape[d] == t->shape[d];
    if (!same) {
        char got[96], want[96];
        shape_str(got, sizeof got, s->ndim, s->shape);
        shape_str(want, sizeof want, t->ndim, t->shape);
        return err_set(ERR_INPUT, "%s: tensor '%s' has shape %s, expected %s", st->path, name, got, want);
    }
    *out = s;
    return ERR_OK;
}

/* Every tensor prefix+name of the table, checked; *mappable says whether each one sits at byte
 * 4 * offset of an aligned data section, so that the section can serve as the flat buffer. */
static Err check_all(const SafeTensors *st, const Model *m, const char *prefix, const StTensor **found,
                     int *mappable) {
    char name[128];
    *mappable = ((uintptr_t)st->data % sizeof(float)) == 0;
    for (int i = 0; i < m->n_tensors; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, m->tensors[i].name);
        Err rc = find_checked(st, name, &m->tensors[i], &found[i]);
        if (rc) return rc;
        if (found[i]->begin != m->tensors[i].offset * sizeof(float)) *mappable = 0;
    }
    return ERR_OK;
}

static void copy_all(float *dst, const SafeTensors *st, const Model *m, const StTensor **found) {
    for (int i = 0; i < m->n_tensors; i++)
        memcpy(dst + m->tensors[i].offset, safetensors_data(st, found[i]), m->tensors[i].numel * sizeof(float));
}

/* A tensor the config does not account for means the config and the weights disagree. Two are
 * tolerated: old transformers' rotary inv_freq buffers, and a tied lm_head stored anyway (if it
 * equals the embedding). */
static Err check_no_extra(const SafeTensors *st, const Model *m) {
    for (int i = 0; i < st->n_tensors; i++) {
        const char *name = st->tensors[i].name;
        size_t n = strlen(name), sfx = strlen("rotary_emb.inv_freq");
        if (model_find_tensor(m, name)) continue;
        if (n >= sfx && strcmp(name + n - sfx, "rotary_emb.inv_freq") == 0) continue;
        if (strcmp(name, "lm_head.weight") == 0 && m->cfg.tie_embeddings) {
            const StTensor *e = safetensors_find(st, "model.embed_tokens.weight"), *s = &st->tensors[i];
            if (e && s->dtype == e->dtype && s->end - s->begin == e->end - e->begin &&
                memcmp(safetensors_data(st, s), safetensors_data(st, e), e->end - e->begin) == 0)
                continue;
            return err_set(ERR_INPUT, "%s: tie_word_embeddings is true but lm_head.weight differs from the embedding",
                           st->path);
        }
        return err_set(ERR_INPUT, "%s: unexpected tensor '%s' (does config.json describe this model?)", st->path, name);
    }
    return ERR_OK;
}

/* ======================================== save ======================================== */

static Err save_optimizer(const char *path, const Model *m, const AdamW *opt) {
    if (opt->n != m->n_params)
        return err_set(ERR_INPUT, "%s: optimizer state has %zu values, the model %zu parameters", path, opt->n, m->n_params);
    char t[32];
    snprintf(t, sizeof t, "%" PRId64, opt->t);
    const char *meta[] = {"format", "pt", "t", t};
    const char *prefixes[] = {"m.", "v."};
    const float *bufs[] = {opt->m, opt->v};
    return write_flat(path, m, prefixes, bufs, 2, meta, 2);
}

static Err save_files(const char *tmp, const Model *m, const CkptExtras *x) {
    Err rc = ERR_OK;
    char *p;
    /* "format": "pt" is what transformers' from_pretrained requires of a safetensors file */
    const char *meta[] = {"format", "pt"};
    const char *prefix[] = {""};
    const float *buf[] = {m->params};
    p = path_join(tmp, "model.safetensors");
    rc = write_flat(p, m, prefix, buf, 1, meta, 1);
    free(p);
    if (!rc && x && x->tokenizer) {
        if (x->tokenizer->vocab_size != m->cfg.vocab_size)
            return err_set(ERR_INPUT, "%s: tokenizer has %d tokens, the model's vocab_size is %d", tmp,
                           x->tokenizer->vocab_size, m->cfg.vocab_size);
        p = path_join(tmp, "tokenizer.bin");
        rc = tokenizer_save(x->tokenizer, p);
        free(p);
    }
    if (!rc && x && x->opt) {
        p = path_join(tmp, "optimizer.safetensors");
        rc = save_optimizer(p, m, x->opt);
        free(p);
    }
    if (!rc && x && x->trainer_state) {
        p = path_join(tmp, "trainer_state.json");
        rc = json_is_object(x->trainer_state) ? json_write_atomic(p, x->trainer_state, JSON_INDENT(1) | JSON_SORT_KEYS)
                                              : err_set(ERR_INPUT, "%s: trainer state must be a JSON object", p);
        free(p);
    }
    if (!rc) { /* config.json last: inside the temp dir it marks the save as complete */
        p = path_join(tmp, "config.json");
        json_t *j = config_to_json(&m->cfg);
        rc = json_write_atomic(p, j, JSON_INDENT(2));
        json_decref(j);
        free(p);
    }
    return rc;
}

/* Saving replaces a checkpoint or an empty directory, never anything else ("--out ." by mistake). */
static int replaceable(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0) return 1;
    if (!S_ISDIR(sb.st_mode)) return 0;
    char *cfg = path_join(dir, "config.json");
    int ok = path_exists(cfg);
    free(cfg);
    DIR *d = ok ? NULL : opendir(dir);
    if (d) {
        ok = 1;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) ok = 0;
        closedir(d);
    }
    return ok;
}

Err ckpt_save(const char *dir, const Model *m, const CkptExtras *extras) {
    if (!replaceable(dir))
        return err_set(ERR_INPUT, "%s: exists and is not a checkpoint (no config.json); refusing to replace it", dir);
    char *tmp = path_suffix(dir, ".tmp");
    Err rc = remove_dir(tmp); /* left over from an interrupted save */
    if (!rc && mkdir(tmp, 0777) != 0) rc = err_set(ERR_RUNTIME, "%s: cannot create: %s", tmp, strerror(errno));
    if (!rc) rc = save_files(tmp, m, extras);
    if (!rc) {
        fsync_dir(tmp);
        rc = swap_into_place(tmp, dir);
    }
    if (rc && path_exists(tmp)) {
        Err keep = rc;
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err_msg());
        remove_dir(tmp);
        rc = err_set(keep, "%s", msg);
    }
    free(tmp);
    return rc;
}

/* ======================================== load ======================================== */

Err ckpt_load_model(Model *m, const char *dir, CkptMap *map) {
    memset(m, 0, sizeof *m);
    if (map) memset(map, 0, sizeof *map);
    ModelConfig cfg;
    Err rc = ckpt_read_config(dir, &cfg);
    if (rc) return rc;
    char *path = path_join(dir, "model.safetensors");
    SafeTensors st;
    rc = safetensors_open(&st, path);
    free(path);
    if (rc) return rc;
    /* a table to check against; params are attached once we know where they come from */
    Model shape;
    rc = model_create(&shape, &cfg, NULL);
    ASSERT(rc == ERR_OK); /* the config was checked */
    const StTensor **found = xcalloc((size_t)shape.n_tensors, sizeof *found);
    int mappable = 0;
    rc = check_all(&st, &shape, "", found, &mappable);
    if (!rc) rc = check_no_extra(&st, &shape);
    if (!rc && (!map || !mappable)) copy_all(shape.params, &st, &shape, found);
    free(found);
    if (rc || !map || !mappable) {
        safetensors_close(&st);
        if (rc)
            model_free(&shape);
        else
            *m = shape;
        return rc;
    }
    /* frozen and mappable: point a fresh model at the mapping and drop the copy */
    model_free(&shape);
    rc = model_create(m, &cfg, (float *)(uintptr_t)st.data);
    ASSERT(rc == ERR_OK);
    map->st = st;
    map->mapped = 1;
    return ERR_OK;
}

void ckpt_map_free(CkptMap *map) {
    if (map->mapped) safetensors_close(&map->st);
    memset(map, 0, sizeof *map);
}

Err ckpt_load_tokenizer(Tokenizer *t, const char *dir, int32_t vocab_size) {
    char *path = path_join(dir, "tokenizer.bin");
    Err rc = tokenizer_load(t, path, vocab_size);
    free(path);
    return rc;
}

Err ckpt_load_optimizer(AdamW *opt, const char *dir, const Model *m) {
    memset(opt, 0, sizeof *opt);
    char *path = path_join(dir, "optimizer.safetensors");
    SafeTensors st;
    Err rc = safetensors_open(&st, path);
    free(path);
    if (rc) return rc;
    const char *t = safetensors_meta(&st, "t");
    char *end = NULL;
    long long steps = t ? strtoll(t, &end, 10) : -1;
    if (!t || *end || end == t || steps < 0) {
        rc = err_set(ERR_INPUT, "%s: metadata 't' (AdamW's step count) is missing or not a count", st.path);
        safetensors_close(&st);
        return rc;
    }
    adamw_create(opt, m->n_params);
    opt->t = steps;
    const StTensor **found = xcalloc((size_t)m->n_tensors, sizeof *found);
    int mappable;
    const char *prefixes[] = {"m.", "v."};
    float *bufs[] = {opt->m, opt->v};
    for (int b = 0; b < 2 && !rc; b++) {
        rc = check_all(&st, m, prefixes[b], found, &mappable);
        if (!rc) copy_all(bufs[b], &st, m, found);
    }
    if (!rc && st.n_tensors != 2 * m->n_tensors)
        rc = err_set(ERR_INPUT, "%s: %d tensors, expected m. and v. for each of the model's %d", st.path, st.n_tensors,
                     m->n_tensors);
    free(found);
    safetensors_close(&st);
    if (rc) adamw_free(opt);
    return rc;
}

Err ckpt_load_trainer_state(const char *dir, json_t **state) {
    char *path = path_join(dir, "trainer_state.json");
    json_error_t jerr;
    *state = json_load_file(path, 0, &jerr);
    Err rc = ERR_OK;
    if (!*state)
        rc = path_exists(path) ? err_set(ERR_INPUT, "%s:%d: %s", path, jerr.line, jerr.text)
                               : err_set(ERR_INPUT, "%s: missing (the checkpoint was not saved for resuming)", path);
    else if (!json_is_object(*state)) {
        rc = err_set(ERR_INPUT, "%s: not a JSON object", path);
        json_decref(*state);
        *state = NULL;
    }
    free(path);
    return rc;
}

/* =================================== llama2.c model.bin =================================== */

#define LLAMA2C_MAGIC 0x616b3432u /* "ak42" */
#define LLAMA2C_V1_HEADER 256

/* One run of the file: a tensor, the same tensor of every layer (SEC_LAYERS), or a RoPE table. */
typedef enum { SEC_TENSOR, SEC_LAYERS, SEC_ROPE_COS, SEC_ROPE_SIN } SecKind;
typedef struct {
    SecKind kind;
    const char *name; /* HF name, or the per-layer suffix */
    int rope_rows;    /* q_proj / k_proj: rows reordered between llama2.c's pairs and HF's halves */
} Section;

/* v0 (export.py legacy_export) order. lm_head.weight is only there when not shared. */
static const Section v0_sections[] = {
    {SEC_TENSOR, "model.embed_tokens.weight", 0},   {SEC_LAYERS, "input_layernorm.weight", 0},
    {SEC_LAYERS, "self_attn.q_proj.weight", 1},     {SEC_LAYERS, "self_attn.k_proj.weight", 1},
    {SEC_LAYERS, "self_attn.v_proj.weight", 0},     {SEC_LAYERS, "self_attn.o_proj.weight", 0},
    {SEC_LAYERS, "post_attention_layernorm.weight", 0}, {SEC_LAYERS, "mlp.gate_proj.weight", 0},
    {SEC_LAYERS, "mlp.down_proj.weight", 0},        {SEC_LAYERS, "mlp.up_proj.weight", 0},
    {SEC_TENSOR, "model.norm.weight", 0},           {SEC_ROPE_COS, NULL, 0},
    {SEC_ROPE_SIN, NULL, 0},                        {SEC_TENSOR, "lm_head.weight", 0},
};
/* v1 (export.py version1_export) order, after the 256-byte header. */
static const Section v1_sections[] = {
    {SEC_LAYERS, "input_layernorm.weight", 0}, {SEC_LAYERS, "post_attention_layernorm.weight", 0},
    {SEC_TENSOR, "model.norm.weight", 0},      {SEC_TENSOR, "model.embed_tokens.weight", 0},
    {SEC_LAYERS, "self_attn.q_proj.weight", 1}, {SEC_LAYERS, "self_attn.k_proj.weight", 1},
    {SEC_LAYERS, "self_attn.v_proj.weight", 0}, {SEC_LAYERS, "self_attn.o_proj.weight", 0},
    {SEC_LAYERS, "mlp.gate_proj.weight", 0},   {SEC_LAYERS, "mlp.down_proj.weight", 0},
    {SEC_LAYERS, "mlp.up_proj.weight", 0},     {SEC_TENSOR, "lm_head.weight", 0},
};

static const Section *sections_of(int version, int *n) {
    *n = version ? (int)(sizeof v1_sections / sizeof *v1_sections) : (int)(sizeof v0_sections / sizeof *v0_sections);
    return version ? v1_sections : v0_sections;
}

/* Copies one tensor between the file (llama2.c row order) and the model (HF row order).
 * Within each head of hd rows, HF row r < hd/2 is llama2.c row 2r and HF row hd/2 + r is row 2r + 1. */
static void move_tensor(float *model, uint8_t *file, const ModelTensor *t, int rope_rows, int hd, int to_model) {
    size_t cols = t->ndim == 2 ? (size_t)t->shape[1] : t->numel, rows = t->numel / cols, bytes = cols * sizeof(float);
    for (size_t r = 0; r < rows; r++) {
        size_t fr = r;
        if (rope_rows) {
            size_t h = r / hd, i = r % hd, half = hd / 2;
            fr = h * hd + (i < half ? 2 * i : 2 * (i - half) + 1);
        }
        if (to_model)
            memcpy(model + r * cols, file + fr * bytes, bytes);
        else
            memcpy(file + fr * bytes, model + r * cols, bytes);
    }
}

/* Walks the sections, moving data between the model and the file at *file (advanced). A model with
 * tied embeddings skips lm_head.weight (it has no such tensor). Returns the bytes walked. */
static size_t walk_sections(Model *m, uint8_t *file, const Section *secs, int n, int to_model) {
    const ModelConfig *c = &m->cfg;
    int hd = c->dim / c->n_heads;
    size_t rope = (size_t)c->max_seq_len * (hd / 2), pos = 0;
    char name[128];
    for (int s = 0; s < n; s++) {
        const Section *sec = &secs[s];
        if (sec->kind == SEC_ROPE_COS || sec->kind == SEC_ROPE_SIN) {
            float *table = sec->kind == SEC_ROPE_COS ? m->rope_cos : m->rope_sin;
            if (file && to_model)
                memcpy(table, file + pos, rope * sizeof(float));
            else if (file)
                memcpy(file + pos, table, rope * sizeof(float));
            pos += rope * sizeof(float);
            continue;
        }
        for (int l = 0; l < (sec->kind == SEC_LAYERS ? c->n_layers : 1); l++) {
            if (sec->kind == SEC_LAYERS)
                snprintf(name, sizeof name, "model.layers.%d.%s", l, sec->name);
            else
                snprintf(name, sizeof name, "%s", sec->name);
            const ModelTensor *t = model_find_tensor(m, name);
            if (!t) {
                ASSERT(strcmp(sec->name, "lm_head.weight") == 0 && c->tie_embeddings);
                continue;
            }
            if (file) move_tensor(m->params + t->offset, file + pos, t, sec->rope_rows, hd, to_model);
            pos += t->numel * sizeof(float);
        }
    }
    return pos;
}

static void put_i32(uint8_t *p, int32_t v) { memcpy(p, &v, 4); } /* little-endian hosts only (x86-64, arm64) */
static int32_t get_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

Err ckpt_import_llama2c(Model *m, const char *path, int *version) {
    memset(m, 0, sizeof *m);
    MappedFile f;
    Err rc = file_map(&f, path);
    if (rc) return rc;
    const uint8_t *p = f.data;
    int ver = 0;
    size_t hdr = 28;
    if (f.size >= 8 && (uint32_t)get_i32(p) == LLAMA2C_MAGIC) {
        ver = get_i32(p + 4);
        hdr = LLAMA2C_V1_HEADER;
        if (ver != 1) {
            file_unmap(&f);
            return err_set(ERR_INPUT, "%s: llama2.c model.bin version %d is not supported (0 and 1 are; 2 is int8)",
                           path, ver);
        }
    }
    if (f.size < hdr) {
        file_unmap(&f);
        return err_set(ERR_INPUT, "%s: %zu bytes, shorter than the %zu-byte llama2.c header", path, f.size, hdr);
    }
    const uint8_t *h = ver ? p + 8 : p;
    int32_t vs = get_i32(h + 20);
    int shared = ver ? p[36] != 0 : vs > 0;
    ModelConfig cfg = {.dim = get_i32(h), .hidden_dim = get_i32(h + 4), .n_layers = get_i32(h + 8),
                       .n_heads = get_i32(h + 12), .n_kv_heads = get_i32(h + 16),
                       .vocab_size = vs < 0 ? -vs : vs, .max_seq_len = get_i32(h + 24),
                       .norm_eps = 1e-5f, .rope_theta = 10000.0f, /* llama2.c hard-codes both */
                       .tie_embeddings = shared, .head = HEAD_LM};
    if ((rc = model_config_check(&cfg))) {
        file_unmap(&f);
        return err_prefix(rc, "%s: not a llama2.c model.bin header: ", path);
    }
    /* the expected size, in double first so that a garbage header cannot overflow size_t */
    double D = cfg.dim, F = cfg.hidden_dim, L = cfg.n_layers, V = cfg.vocab_size, hd = D / cfg.n_heads;
    double KVd = cfg.n_kv_heads * hd, S = cfg.max_seq_len;
    double floats = V * D + L * (2 * D + 2 * D * D + 2 * KVd * D + 3 * F * D) + D + (shared ? 0 : V * D) +
                    (ver ? 0 : S * hd);
    double need = hdr + 4 * floats;
    if (need != (double)f.size) {
        file_unmap(&f);
        return err_set(ERR_INPUT, "%s: %zu bytes, but its v%d header (dim %d, hidden_dim %d, layers %d, heads %d, "
                       "kv_heads %d, vocab %d, seq_len %d) implies %.0f: truncated or not a llama2.c model", path,
                       f.size, ver, cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, vs,
                       cfg.max_seq_len, need);
    }
    model_create(m, &cfg, NULL);
    float *our_cos = NULL, *our_sin = NULL;
    size_t rope = (size_t)cfg.max_seq_len * (cfg.dim / cfg.n_heads / 2);
    if (ver == 0) { /* keep ours to check the file's tables against */
        our_cos = xmalloc(rope * sizeof(float));
        our_sin = xmalloc(rope * sizeof(float));
        memcpy(our_cos, m->rope_cos, rope * sizeof(float));
        memcpy(our_sin, m->rope_sin, rope * sizeof(float));
    }
    int n;
    const Section *secs = sections_of(ver, &n);
    walk_sections(m, (uint8_t *)(uintptr_t)p + hdr, secs, n, 1);
    file_unmap(&f);
    if (ver == 0) {
        double worst = 0;
        for (size_t i = 0; i < rope; i++)
            worst = fmax(worst, fmax(fabs(our_cos[i] - m->rope_cos[i]), fabs(our_sin[i] - m->rope_sin[i])));
        free(our_cos);
        free(our_sin);
        if (!(worst <= 1e-5)) {
            model_free(m);
            return err_set(ERR_INPUT, "%s: its RoPE tables are not those of theta 10000 (max difference %g): "
                           "not a llama2.c v0 model", path, worst);
        }
    }
    if (version) *version = ver;
    return ERR_OK;
}

Err ckpt_export_llama2c(const Model *m, const char *path, int version) {
    const ModelConfig *c = &m->cfg;
    if (version != 0 && version != 1) return err_set(ERR_INPUT, "%s: llama2.c version %d: 0 or 1", path, version);
    if (c->head != HEAD_LM) return err_set(ERR_INPUT, "%s: llama2.c models have an LM head, not a scalar one", path);
    if (c->norm_eps != 1e-5f || c->rope_theta != 10000.0f)
        return err_set(ERR_INPUT, "%s: llama2.c hard-codes rms_norm_eps 1e-5 and rope_theta 10000; this model has %g and %g",
                       path, c->norm_eps, c->rope_theta);
    int n;
    const Section *secs = sections_of(version, &n);
    Model *mm = (Model *)(uintptr_t)m; /* walk_sections only reads the model when exporting */
    size_t hdr = version ? LLAMA2C_V1_HEADER : 28, body = walk_sections(mm, NULL, secs, n, 0);
    uint8_t *buf = xcalloc(hdr + body, 1);
    uint8_t *h = buf;
    if (version) {
        put_i32(buf, (int32_t)LLAMA2C_MAGIC);
        put_i32(buf + 4, 1);
        h = buf + 8;
        buf[36] = (uint8_t)(c->tie_embeddings != 0);
    }
    int32_t fields[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                         version || c->tie_embeddings ? c->vocab_size : -c->vocab_size, c->max_seq_len};
    for (int i = 0; i < 7; i++) put_i32(h + 4 * i, fields[i]);
    walk_sections(mm, buf + hdr, secs, n, 0);
    AtomicFile af;
    Err rc = atomic_open(&af, path);
    if (!rc) {
        if (fwrite(buf, 1, hdr + body, af.f) != hdr + body) {
            atomic_abort(&af);
            rc = err_set(ERR_RUNTIME, "%s: write failed", path);
        } else
            rc = atomic_commit(&af);
    }
    free(buf);
    return rc;
}
