/*
 * ckpt: checkpoint directories round-trip bit-exactly (LM untied and tied, scalar head, optimizer and
 * trainer state, tokenizer); frozen loads map the file; every malformed checkpoint is rejected with a
 * message naming the file and the problem; llama2.c stories260K imports, exports back to the same
 * bytes, and decodes greedily to the ids of tests/fixtures/stories260K_greedy.json.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "fileio.h"
#include "testutil.h"
#include "util.h"

static char tmpdir[64];

static ModelConfig small_cfg(HeadKind head, int tied) {
    return (ModelConfig){.dim = 32, .hidden_dim = 48, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                         .vocab_size = 272, .max_seq_len = 64, .norm_eps = 1e-6f, .rope_theta = 500000.0f,
                         .tie_embeddings = tied, .head = head};
}

static void make_model(Model *m, ModelConfig cfg, uint64_t seed) {
    ck_assert_int_eq(model_create(m, &cfg, NULL), ERR_OK);
    model_init_random(m, seed, 0.02f);
    /* norm gains away from 1 so that a swapped norm tensor shows */
    for (size_t i = 0; i < (size_t)cfg.n_layers * cfg.dim; i++) m->w.attn_norm[i] += 0.001f * (float)i;
}

static void train_tokenizer(Tokenizer *t, int32_t vocab) {
    static const char corpus[] = "the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat "
                                 "and the cat ran to the log, then the dog ran to the mat.";
    ck_assert_msg(tokenizer_train(t, corpus, sizeof corpus - 1, vocab, NULL) == ERR_OK, "%s", err_msg());
}

static char *tmp_path(const char *name) {
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static void assert_same_params(const Model *a, const Model *b) {
    ck_assert_int_eq(a->n_params, b->n_params);
    ck_assert(memcmp(&a->cfg, &b->cfg, sizeof a->cfg) == 0);
    ck_assert(memcmp(a->params, b->params, a->n_params * sizeof(float)) == 0);
}

static void expect_load_error(const char *dir, const char *needle1, const char *needle2) {
    Model m;
    Err rc = ckpt_load_model(&m, dir, NULL);
    ck_assert_int_eq(rc, ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), needle1) && (!needle2 || strstr(err_msg(), needle2)), "message '%s' lacks '%s'/'%s'",
                  err_msg(), needle1, needle2 ? needle2 : "");
}

/* ---------------------------------- round trips ---------------------------------- */

static void round_trip(HeadKind head, int tied, const char *name) {
    Model m, back;
    make_model(&m, small_cfg(head, tied), 7);
    Tokenizer tok;
    train_tokenizer(&tok, m.cfg.vocab_size);
    AdamW opt;
    adamw_create(&opt, m.n_params);
    for (size_t i = 0; i < m.n_params; i++) {
        opt.m[i] = (float)i * 1e-3f;
        opt.v[i] = 1.0f / (float)(i + 1);
    }
    opt.t = 1234567890123LL;
    json_t *state = json_pack("{s:I, s:s, s:f, s:[i,i]}", "step", (json_int_t)42, "rng", "0x9e3779b97f4a7c15",
                              "lr", 3.0e-4, "data", 3, 17);
    CkptExtras x = {.tokenizer = &tok, .opt = &opt, .trainer_state = state};
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tmp_path(name));
    ck_assert_msg(ckpt_save(dir, &m, &x) == ERR_OK, "%s", err_msg());
    char tmpname[96];
    snprintf(tmpname, sizeof tmpname, "%s.tmp", name);
    ck_assert(access(tmp_path(tmpname), F_OK) != 0); /* swapped in, nothing left behind */

    ModelConfig cfg;
    ck_assert_int_eq(ckpt_read_config(dir, &cfg), ERR_OK);
    ck_assert(memcmp(&cfg, &m.cfg, sizeof cfg) == 0);
    ck_assert_msg(ckpt_load_model(&back, dir, NULL) == ERR_OK, "%s", err_msg());
    assert_same_params(&m, &back);
    ck_assert_int_eq(back.owns_params, 1);
    back.params[0] += 1; /* a training copy is writable */
    model_free(&back);

    /* frozen: the params are the file's pages */
    CkptMap map;
    ck_assert_msg(ckpt_load_model(&back, dir, &map) == ERR_OK, "%s", err_msg());
    ck_assert_int_eq(map.mapped, 1);
    ck_assert_ptr_eq(back.params, map.st.data);
    assert_same_params(&m, &back);
    model_free(&back);
    ckpt_map_free(&map);

    Tokenizer tok2;
    ck_assert_msg(ckpt_load_tokenizer(&tok2, dir, m.cfg.vocab_size) == ERR_OK, "%s", err_msg());
    for (int32_t id = 0; id < tok.vocab_size; id++) {
        size_t la, lb;
        const char *a = tokenizer_piece(&tok, id, &la), *b = tokenizer_piece(&tok2, id, &lb);
        ck_assert(la == lb && memcmp(a, b, la) == 0);
    }
    tokenizer_free(&tok2);
    ck_assert_int_eq(ckpt_load_tokenizer(&tok2, dir, m.cfg.vocab_size + 1), ERR_INPUT); /* size mismatch */
    ck_assert_msg(strstr(err_msg(), "tokenizer.bin"), "%s", err_msg());

    AdamW opt2;
    ck_assert_msg(ckpt_load_optimizer(&opt2, dir, &m) == ERR_OK, "%s", err_msg());
    ck_assert_int_eq(opt2.t, opt.t);
    ck_assert(memcmp(opt.m, opt2.m, m.n_params * sizeof(float)) == 0);
    ck_assert(memcmp(opt.v, opt2.v, m.n_params * sizeof(float)) == 0);
    adamw_free(&opt2);

    json_t *state2;
    ck_assert_int_eq(ckpt_load_trainer_state(dir, &state2), ERR_OK);
    ck_assert(json_equal(state, state2));
    json_decref(state2);

    json_decref(state);
    adamw_free(&opt);
    tokenizer_free(&tok);
    model_free(&m);
}

START_TEST(test_round_trip_lm_untied) { round_trip(HEAD_LM, 0, "lm_untied"); }
END_TEST
START_TEST(test_round_trip_lm_tied) { round_trip(HEAD_LM, 1, "lm_tied"); }
END_TEST
START_TEST(test_round_trip_scalar) { round_trip(HEAD_SCALAR, 0, "scalar"); }
END_TEST

START_TEST(test_config_json_is_hf) {
    Model m;
    make_model(&m, small_cfg(HEAD_SCALAR, 0), 1);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tmp_path("hfcfg"));
    ck_assert_int_eq(ckpt_save(dir, &m, NULL), ERR_OK);
    json_t *j = json_load_file(tmp_path("hfcfg/config.json"), 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "architectures"), 0)),
                     "LlamaForSequenceClassification");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "num_labels")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "num_key_value_heads")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(j, "torch_dtype")), "float32");
    ck_assert(json_real_value(json_object_get(j, "rms_norm_eps")) == 1e-6); /* the decimal, not float's double */
    json_decref(j);
    /* the data section is the flat buffer: score.weight is its last D floats */
    SafeTensors st;
    ck_assert_int_eq(safetensors_open(&st, tmp_path("hfcfg/model.safetensors")), ERR_OK);
    ck_assert_str_eq(safetensors_meta(&st, "format"), "pt");
    const StTensor *s = safetensors_find(&st, "score.weight");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->shape[0], 1);
    ck_assert_int_eq(s->begin, (m.n_params - 32) * 4);
    ck_assert_int_eq(st.n_tensors, m.n_tensors);
    safetensors_close(&st);
    /* no tokenizer, optimizer or trainer state were asked for */
    ck_assert(access(tmp_path("hfcfg/tokenizer.bin"), F_OK) != 0);
    AdamW opt;
    ck_assert_int_eq(ckpt_load_optimizer(&opt, dir, &m), ERR_INPUT);
    json_t *state;
    ck_assert_int_eq(ckpt_load_trainer_state(dir, &state), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "trainer_state.json"), "%s", err_msg());
    model_free(&m);
}
END_TEST

START_TEST(test_save_replaces_and_survives_stale_tmp) {
    Model a, b, back;
    make_model(&a, small_cfg(HEAD_LM, 0), 1);
    make_model(&b, small_cfg(HEAD_LM, 1), 2);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tmp_path("replace"));
    ck_assert_int_eq(ckpt_save(dir, &a, NULL), ERR_OK);
    /* a crash during an earlier save left a half-written temp dir behind */
    char stale[256];
    snprintf(stale, sizeof stale, "%s", tmp_path("replace.tmp"));
    ck_assert_int_eq(mkdir(stale, 0777), 0);
    FILE *f = fopen(tmp_path("replace.tmp/model.safetensors"), "wb");
    fputs("half", f);
    fclose(f);
    ck_assert_msg(ckpt_save(dir, &b, NULL) == ERR_OK, "%s", err_msg());
    ck_assert(access(stale, F_OK) != 0);
    ck_assert(access(tmp_path("replace.old"), F_OK) != 0);
    ck_assert_int_eq(ckpt_load_model(&back, dir, NULL), ERR_OK);
    assert_same_params(&b, &back);
    model_free(&back);
    /* a temp dir alone is not a checkpoint: the load fails rather than reading it */
    ck_assert_int_eq(mkdir(tmp_path("only.tmp"), 0777), 0);
    expect_load_error(tmp_path("only"), "config.json: missing", NULL);
    /* never replace a directory that is not a checkpoint */
    char other[256];
    snprintf(other, sizeof other, "%s", tmp_path("notckpt"));
    ck_assert_int_eq(mkdir(other, 0777), 0);
    f = fopen(tmp_path("notckpt/precious.txt"), "w");
    fclose(f);
    ck_assert_int_eq(ckpt_save(other, &a, NULL), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "not a checkpoint"), "%s", err_msg());
    ck_assert(access(tmp_path("notckpt/precious.txt"), F_OK) == 0);
    model_free(&a);
    model_free(&b);
}
END_TEST

/* -------------------------------- malformed checkpoints -------------------------------- */

/* A fresh valid checkpoint at tmpdir/name (LM, untied). */
static char *valid_ckpt(const char *name, Model *m) {
    make_model(m, small_cfg(HEAD_LM, 0), 3);
    static char dir[256]; /* tmp_path's buffers are reused */
    snprintf(dir, sizeof dir, "%s", tmp_path(name));
    Tokenizer tok;
    train_tokenizer(&tok, m->cfg.vocab_size);
    CkptExtras x = {.tokenizer = &tok};
    ck_assert_int_eq(ckpt_save(dir, m, &x), ERR_OK);
    tokenizer_free(&tok);
    return dir;
}

/* Rewrites dir/config.json with key set to the JSON text `value` (NULL: key removed). */
static void edit_config(const char *dir, const char *key, const char *value) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *j = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(j);
    if (value)
        json_object_set_new(j, key, json_loads(value, JSON_DECODE_ANY, NULL));
    else
        json_object_del(j, key);
    ck_assert_int_eq(json_dump_file(j, path, 0), 0);
    json_decref(j);
}

START_TEST(test_bad_config) {
    Model m;
    char *dir = valid_ckpt("badcfg", &m);
    static const struct {
        const char *key, *value, *needle;
    } cases[] = {
        {"hidden_size", NULL, "key 'hidden_size' is missing"},
        {"rms_norm_eps", NULL, "key 'rms_norm_eps' is missing"},
        {"architectures", NULL, "key 'architectures' is missing"},
        {"num_attention_heads", "\"4\"", "key 'num_attention_heads' must be an integer"},
        {"vocab_size", "272.5", "key 'vocab_size' must be an integer"},
        {"rms_norm_eps", "\"1e-6\"", "key 'rms_norm_eps' must be a number"},
        {"tie_word_embeddings", "1", "key 'tie_word_embeddings' must be true or false"},
        {"architectures", "[\"GPT2LMHeadModel\"]", "neither LlamaForCausalLM"},
        {"architectures", "\"LlamaForCausalLM\"", "array of one string"},
        {"num_key_value_heads", "3", "n_kv_heads"},
        {"hidden_act", "\"gelu\"", "hidden_act"},
        {"rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}", "rope_scaling"},
        {"model_type", "\"mistral\"", "model_type"},
        {"head_dim", "16", "head_dim"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "badcfg%zu", i);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "cp -r %s %s", dir, tmp_path(sub));
        ck_assert_int_eq(system(cmd), 0);
        edit_config(tmp_path(sub), cases[i].key, cases[i].value);
        expect_load_error(tmp_path(sub), cases[i].needle, "config.json");
    }
    /* a reward model needs one label */
    Model r;
    make_model(&r, small_cfg(HEAD_SCALAR, 0), 4);
    char rdir[256];
    snprintf(rdir, sizeof rdir, "%s", tmp_path("badlabels"));
    ck_assert_int_eq(ckpt_save(rdir, &r, NULL), ERR_OK);
    edit_config(rdir, "num_labels", "2");
    expect_load_error(rdir, "num_labels", NULL);
    edit_config(rdir, "num_labels", NULL);
    edit_config(rdir, "id2label", NULL);
    expect_load_error(rdir, "key 'num_labels' is missing", NULL);
    /* not JSON at all: file and line */
    FILE *f = fopen(tmp_path("badcfg/config.json"), "w");
    fputs("{\n  \"hidden_size\": 32,\n  oops\n}\n", f);
    fclose(f);
    expect_load_error(dir, "config.json:3:", NULL);
    model_free(&r);
    model_free(&m);
}
END_TEST

/* Writes dir/model.safetensors from m's tensors, with one tensor changed by `how`. */
enum { DROP, RESHAPE, AS_I32, EXTRA };
static void write_weights_with(const char *dir, const Model *m, const char *victim, int how) {
    StEntry *e = xcalloc((size_t)m->n_tensors + 1, sizeof(StEntry));
    int n = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        int hit = strcmp(t->name, victim) == 0;
        if (hit && how == DROP) continue;
        e[n] = (StEntry){.name = t->name, .dtype = hit && how == AS_I32 ? ST_I32 : ST_F32, .ndim = t->ndim,
                         .data = m->params + t->offset};
        e[n].shape[0] = t->shape[0];
        e[n].shape[1] = t->shape[1];
        if (hit && how == RESHAPE) { /* transposed */
            e[n].shape[0] = t->shape[1];
            e[n].shape[1] = t->shape[0];
        }
        n++;
    }
    if (how == EXTRA) e[n++] = (StEntry){.name = victim, .dtype = ST_F32, .ndim = 1, .shape = {4}, .data = m->params};
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt"};
    ck_assert_int_eq(safetensors_write(path, e, n, meta, 1), ERR_OK);
    free(e);
}

START_TEST(test_bad_weights) {
    Model m;
    char *dir = valid_ckpt("badw", &m);
    const char *up = "model.layers.1.mlp.up_proj.weight";
    write_weights_with(dir, &m, up, DROP);
    expect_load_error(dir, "tensor 'model.layers.1.mlp.up_proj.weight' is missing", "badw/model.safetensors");
    write_weights_with(dir, &m, up, RESHAPE);
    expect_load_error(dir, "has shape [32, 48], expected [48, 32]", up);
    write_weights_with(dir, &m, "model.layers.0.self_attn.k_proj.weight", AS_I32);
    expect_load_error(dir, "'model.layers.0.self_attn.k_proj.weight' has dtype I32, expected F32", NULL);
    write_weights_with(dir, &m, "model.layers.2.mlp.up_proj.weight", EXTRA); /* a third layer the config lacks */
    expect_load_error(dir, "unexpected tensor 'model.layers.2.mlp.up_proj.weight'", NULL);
    /* a valid file in table order (layer by layer, as other writers do) is not the flat buffer:
     * a frozen load copies it, with the same result */
    write_weights_with(dir, &m, "", DROP);
    Model back;
    CkptMap map;
    ck_assert_msg(ckpt_load_model(&back, dir, &map) == ERR_OK, "%s", err_msg());
    ck_assert_int_eq(map.mapped, 0);
    ck_assert_int_eq(back.owns_params, 1);
    assert_same_params(&m, &back);
    model_free(&back);
    ckpt_map_free(&map);
    /* truncated: the last tensor's bytes are gone */
    char *path = tmp_path("badw/model.safetensors");
    ck_assert_int_eq(truncate(path, 4000), 0);
    expect_load_error(dir, "truncated", "model.safetensors");
    ck_assert_int_eq(truncate(path, 5), 0);
    expect_load_error(dir, "model.safetensors", NULL);
    unlink(path);
    expect_load_error(dir, "model.safetensors", NULL);
    model_free(&m);
}
END_TEST

START_TEST(test_bad_extras) {
    Model m;
    char *dir = valid_ckpt("badx", &m);
    /* optimizer: the step count is required, and each tensor like the model's */
    AdamW opt;
    adamw_create(&opt, m.n_params);
    CkptExtras x = {.opt = &opt};
    ck_assert_int_eq(ckpt_save(dir, &m, &x), ERR_OK);
    SafeTensors st;
    char opath[256];
    snprintf(opath, sizeof opath, "%s", tmp_path("badx/optimizer.safetensors"));
    ck_assert_int_eq(safetensors_open(&st, opath), ERR_OK);
    StEntry *e = xcalloc((size_t)st.n_tensors, sizeof(StEntry));
    for (int i = 0; i < st.n_tensors; i++) {
        e[i] = (StEntry){.name = st.tensors[i].name, .dtype = ST_F32, .ndim = st.tensors[i].ndim,
                         .data = safetensors_data(&st, &st.tensors[i])};
        memcpy(e[i].shape, st.tensors[i].shape, sizeof e[i].shape);
    }
    char copy[256];
    snprintf(copy, sizeof copy, "%s", tmp_path("opt_copy.safetensors"));
    const char *meta[] = {"format", "pt", "t", "-3"};
    ck_assert_int_eq(safetensors_write(copy, e, st.n_tensors, meta, 2), ERR_OK);
    ck_assert_int_eq(safetensors_write(tmp_path("opt_short.safetensors"), e, st.n_tensors - 1, meta + 2, 0), ERR_OK);
    safetensors_close(&st);
    free(e);
    ck_assert_int_eq(rename(copy, opath), 0);
    AdamW back;
    ck_assert_int_eq(ckpt_load_optimizer(&back, dir, &m), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "metadata 't'"), "%s", err_msg());
    ck_assert_int_eq(rename(tmp_path("opt_short.safetensors"), opath), 0);
    ck_assert_int_eq(ckpt_load_optimizer(&back, dir, &m), ERR_INPUT);
    /* trainer state must be an object; the model must match the optimizer's size */
    json_t *arr = json_array();
    x = (CkptExtras){.trainer_state = arr};
    ck_assert_int_eq(ckpt_save(dir, &m, &x), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "JSON object"), "%s", err_msg());
    json_decref(arr);
    FILE *f = fopen(tmp_path("badx/trainer_state.json"), "w");
    fputs("{\"step\": 3,}", f);
    fclose(f);
    json_t *state;
    ck_assert_int_eq(ckpt_load_trainer_state(dir, &state), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "trainer_state.json:1:"), "%s", err_msg());
    AdamW small;
    adamw_create(&small, 10);
    x = (CkptExtras){.opt = &small};
    ck_assert_int_eq(ckpt_save(dir, &m, &x), ERR_INPUT);
    adamw_free(&small);
    /* a failed save left the previous checkpoint loadable */
    Model back_m;
    ck_assert_int_eq(ckpt_load_model(&back_m, dir, NULL), ERR_OK);
    assert_same_params(&m, &back_m);
    model_free(&back_m);
    adamw_free(&opt);
    model_free(&m);
}
END_TEST

/* ------------------------------------ llama2.c ------------------------------------ */

static void stories_path(char *buf, size_t n) { snprintf(buf, n, "%s/llama2c/stories260K.bin", testutil_data_dir()); }

static uint8_t *slurp(const char *path, size_t *n) {
    MappedFile f;
    ck_assert_msg(file_map(&f, path) == ERR_OK, "%s", err_msg());
    uint8_t *b = xmalloc(f.size + 1);
    memcpy(b, f.data, f.size);
    *n = f.size;
    file_unmap(&f);
    return b;
}

START_TEST(test_stories260k_v0_bytes_back) {
    char src[512];
    stories_path(src, sizeof src);
    Model m;
    int ver = -1;
    ck_assert_msg(ckpt_import_llama2c(&m, src, &ver) == ERR_OK, "%s", err_msg());
    ck_assert_int_eq(ver, 0);
    ck_assert_int_eq(m.cfg.dim, 64);
    ck_assert_int_eq(m.cfg.n_kv_heads, 4);
    ck_assert_int_eq(m.cfg.vocab_size, 512);
    ck_assert_int_eq(m.cfg.tie_embeddings, 1);
    char *out = tmp_path("stories_v0.bin");
    ck_assert_msg(ckpt_export_llama2c(&m, out, 0) == ERR_OK, "%s", err_msg());
    size_t na, nb;
    uint8_t *a = slurp(src, &na), *b = slurp(out, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(a, b, na) == 0, "exported v0 differs from %s", src);
    free(a);
    free(b);
    model_free(&m);
}
END_TEST

START_TEST(test_stories260k_greedy) {
    char src[512], fix[512];
    stories_path(src, sizeof src);
    Model m;
    ck_assert_int_eq(ckpt_import_llama2c(&m, src, NULL), ERR_OK);
    /* through a checkpoint directory and back: what a user aligning stories260K does */
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tmp_path("stories_ckpt"));
    ck_assert_int_eq(ckpt_save(dir, &m, NULL), ERR_OK);
    Model hf;
    ck_assert_int_eq(ckpt_load_model(&hf, dir, NULL), ERR_OK);
    assert_same_params(&m, &hf);
    snprintf(fix, sizeof fix, "tests/fixtures/stories260K_greedy.json");
    json_t *j = json_load_file(fix, 0, NULL);
    ck_assert_ptr_nonnull(j);
    json_t *want = json_object_get(j, "tokens"), *top5 = json_object_get(j, "logits_first_step_top5");
    int n = (int)json_array_size(want);
    ck_assert_int_eq(n, 64);
    Model *models[2] = {&m, &hf}; /* file RoPE tables, and our own after the directory round trip */
    for (int k = 0; k < 2; k++) {
        Decoder d;
        decoder_create(&d, models[k], 1, n + 1);
        int32_t tok = (int32_t)json_integer_value(json_object_get(j, "bos")), pos = 0;
        for (int t = 0; t < n; t++, pos++) {
            const float *logits = model_decode_step(models[k], &d, &tok, &pos, 1);
            if (t == 0)
                for (size_t r = 0; r < json_array_size(top5); r++) {
                    json_t *pair = json_array_get(top5, r);
                    int id = (int)json_integer_value(json_array_get(pair, 0));
                    double ref = json_real_value(json_array_get(pair, 1));
                    ck_assert_msg(fabs(logits[id] - ref) <= 1e-4, "logit %d: %g vs %g", id, logits[id], ref);
                }
            int best = 0;
            for (int v = 1; v < m.cfg.vocab_size; v++)
                if (logits[v] > logits[best]) best = v;
            ck_assert_msg(best == json_integer_value(json_array_get(want, t)), "model %d step %d: %d vs %lld", k, t, best,
                          (long long)json_integer_value(json_array_get(want, t)));
            tok = best;
        }
        decoder_free(&d);
    }
    json_decref(j);
    model_free(&hf);
    model_free(&m);
}
END_TEST

START_TEST(test_llama2c_v1_and_untied_round_trips) {
    char src[512];
    stories_path(src, sizeof src);
    Model m, back;
    ck_assert_int_eq(ckpt_import_llama2c(&m, src, NULL), ERR_OK);
    char *v1 = tmp_path("stories_v1.bin");
    ck_assert_int_eq(ckpt_export_llama2c(&m, v1, 1), ERR_OK);
    int ver = -1;
    ck_assert_msg(ckpt_import_llama2c(&back, v1, &ver) == ERR_OK, "%s", err_msg());
    ck_assert_int_eq(ver, 1);
    assert_same_params(&m, &back);
    model_free(&back);
    model_free(&m);
    /* an untied model (v0's negative vocab_size, v1's flag 0) through both versions */
    ModelConfig cfg = small_cfg(HEAD_LM, 0);
    cfg.norm_eps = 1e-5f;
    cfg.rope_theta = 10000.0f;
    make_model(&m, cfg, 9);
    for (int v = 0; v < 2; v++) {
        char *p = tmp_path(v ? "untied_v1.bin" : "untied_v0.bin");
        ck_assert_int_eq(ckpt_export_llama2c(&m, p, v), ERR_OK);
        size_t n;
        uint8_t *b = slurp(p, &n);
        int32_t vocab;
        memcpy(&vocab, b + (v ? 28 : 20), 4);
        ck_assert_int_eq(vocab, v ? 272 : -272);
        if (v) ck_assert_int_eq(b[36], 0);
        free(b);
        ck_assert_int_eq(ckpt_import_llama2c(&back, p, NULL), ERR_OK);
        assert_same_params(&m, &back);
        model_free(&back);
    }
    model_free(&m);
}
END_TEST

/* The q/k row reordering is what makes llama2.c's adjacent-pair RoPE equal HF's halves: the exported
 * file must hold, for head h, HF row hd/2 + i at llama2.c row 2i + 1. */
START_TEST(test_llama2c_rope_row_order) {
    ModelConfig cfg = small_cfg(HEAD_LM, 1);
    cfg.norm_eps = 1e-5f;
    cfg.rope_theta = 10000.0f;
    Model m;
    make_model(&m, cfg, 11);
    char *p = tmp_path("order_v1.bin");
    ck_assert_int_eq(ckpt_export_llama2c(&m, p, 1), ERR_OK);
    size_t n;
    uint8_t *b = slurp(p, &n);
    int D = 32, L = 2, V = 272, hd = 8;
    /* v1: norms (L D + L D + D), embedding (V D), then wq of layer 0 */
    const float *wq0 = (const float *)(b + 256) + (2 * L * D + D + V * D);
    const float *q = m.params + model_find_tensor(&m, "model.layers.0.self_attn.q_proj.weight")->offset;
    for (int h = 0; h < 4; h++)
        for (int i = 0; i < hd / 2; i++) {
            ck_assert(memcmp(wq0 + (size_t)(h * hd + 2 * i) * D, q + (size_t)(h * hd + i) * D, D * 4) == 0);
            ck_assert(memcmp(wq0 + (size_t)(h * hd + 2 * i + 1) * D, q + (size_t)(h * hd + hd / 2 + i) * D, D * 4) == 0);
        }
    free(b);
    model_free(&m);
}
END_TEST

START_TEST(test_llama2c_bad_files) {
    char src[512];
    stories_path(src, sizeof src);
    size_t n;
    uint8_t *b = slurp(src, &n);
    Model m;
    char *p = tmp_path("bad.bin");
    FILE *f;
#define WRITE_BAD(bytes, len)                     \
    f = fopen(p, "wb");                           \
    ck_assert_uint_eq(fwrite(bytes, 1, len, f), len); \
    fclose(f)
    WRITE_BAD(b, n - 4); /* truncated */
    ck_assert_int_eq(ckpt_import_llama2c(&m, p, NULL), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "truncated") && strstr(err_msg(), "bad.bin"), "%s", err_msg());
    WRITE_BAD(b, 12); /* shorter than the header */
    ck_assert_int_eq(ckpt_import_llama2c(&m, p, NULL), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "header"), "%s", err_msg());
    int32_t odd = 7; /* 8 heads do not divide dim 7 */
    memcpy(b, &odd, 4);
    WRITE_BAD(b, n);
    ck_assert_int_eq(ckpt_import_llama2c(&m, p, NULL), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "not a llama2.c model.bin header"), "%s", err_msg());
    int32_t dim = 64;
    memcpy(b, &dim, 4);
    float *cos0 = (float *)(b + n - 2 * 512 * 4 * 4) + 4 * 3 + 1; /* a RoPE entry at position 3 */
    *cos0 += 0.25f;
    WRITE_BAD(b, n);
    ck_assert_int_eq(ckpt_import_llama2c(&m, p, NULL), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "RoPE"), "%s", err_msg());
    uint32_t hdr[3] = {0x616b3432u, 2, 0}; /* v2 is int8-quantised */
    WRITE_BAD(hdr, sizeof hdr);
    ck_assert_int_eq(ckpt_import_llama2c(&m, p, NULL), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "version 2"), "%s", err_msg());
    hdr[1] = 1;
    WRITE_BAD(hdr, sizeof hdr);
    ck_assert_int_eq(ckpt_import_llama2c(&m, p, NULL), ERR_INPUT);
#undef WRITE_BAD
    free(b);
    ck_assert_int_eq(ckpt_import_llama2c(&m, tmp_path("no_such.bin"), NULL), ERR_INPUT);
    /* what llama2.c cannot represent */
    Model s;
    make_model(&s, small_cfg(HEAD_SCALAR, 0), 1);
    ck_assert_int_eq(ckpt_export_llama2c(&s, p, 0), ERR_INPUT);
    model_free(&s);
    make_model(&s, small_cfg(HEAD_LM, 0), 1); /* eps 1e-6, theta 5e5 */
    ck_assert_int_eq(ckpt_export_llama2c(&s, p, 1), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "hard-codes"), "%s", err_msg());
    ck_assert_int_eq(ckpt_export_llama2c(&s, p, 2), ERR_INPUT);
    model_free(&s);
}
END_TEST

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_ckpt.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    Suite *s = suite_create("ckpt");
    TCase *tc = tcase_create("directories");
    tcase_add_test(tc, test_round_trip_lm_untied);
    tcase_add_test(tc, test_round_trip_lm_tied);
    tcase_add_test(tc, test_round_trip_scalar);
    tcase_add_test(tc, test_config_json_is_hf);
    tcase_add_test(tc, test_save_replaces_and_survives_stale_tmp);
    tcase_add_test(tc, test_bad_config);
    tcase_add_test(tc, test_bad_weights);
    tcase_add_test(tc, test_bad_extras);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("llama2c");
    tcase_set_timeout(tl, 30);
    tcase_add_test(tl, test_stories260k_v0_bytes_back);
    tcase_add_test(tl, test_stories260k_greedy);
    tcase_add_test(tl, test_llama2c_v1_and_untied_round_trips);
    tcase_add_test(tl, test_llama2c_rope_row_order);
    tcase_add_test(tl, test_llama2c_bad_files);
    suite_add_tcase(s, tl);
    int rc = testutil_run(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) return 1;
    return rc;
}
