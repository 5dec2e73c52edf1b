/*
 * The C model against the independent PyTorch reference (tests/ref/llama_ref.py, computed in
 * float64, stored as float32 in tests/fixtures/ref_*.safetensors): logits or values, loss, every
 * parameter gradient, and the parameters after three clipped AdamW steps.
 *
 * Tolerances (float32 here against a float64 reference through two layers):
 *   outputs and loss:  |c - ref| <= 1e-5 + 1e-4 |ref|
 *   gradients:         |c - ref| <= 1e-6 + 1e-3 max|ref of that tensor|   (per tensor)
 *   after 3 steps:     |c - ref| <= 2e-6 + 1e-4 |ref|  (AdamW's m/sqrt(v) amplifies tiny gradient
 *                      differences only where a gradient is ~0; lr 1e-3 bounds any step's change)
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "optim.h"
#include "safetensors.h"
#include "testutil.h"
#include "util.h"

typedef struct {
    SafeTensors st;
    json_t *cfg;
    Model m;
    int B, T;
    int32_t *tokens, *targets, *lengths;
    float *mask, *coef, *vtarget;
} Fixture;

static double cfg_num(json_t *c, const char *k) {
    json_t *v = json_object_get(c, k);
    ck_assert_msg(json_is_number(v), "fixture config lacks %s", k);
    return json_number_value(v);
}

static void fixture_load(Fixture *f, const char *name) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/ref_%s.safetensors", name);
    ck_assert_msg(safetensors_open(&f->st, path) == ERR_OK, "%s", err_msg());
    const char *cj = safetensors_meta(&f->st, "config");
    ck_assert_ptr_nonnull(cj);
    f->cfg = json_loads(cj, 0, NULL);
    ck_assert_ptr_nonnull(f->cfg);
    ModelConfig mc = {
        .dim = (int)cfg_num(f->cfg, "dim"), .hidden_dim = (int)cfg_num(f->cfg, "hidden_dim"),
        .n_layers = (int)cfg_num(f->cfg, "n_layers"), .n_heads = (int)cfg_num(f->cfg, "n_heads"),
        .n_kv_heads = (int)cfg_num(f->cfg, "n_kv_heads"), .vocab_size = (int)cfg_num(f->cfg, "vocab_size"),
        .max_seq_len = (int)cfg_num(f->cfg, "max_seq_len"), .norm_eps = (float)cfg_num(f->cfg, "norm_eps"),
        .rope_theta = (float)cfg_num(f->cfg, "rope_theta"),
        .tie_embeddings = json_is_true(json_object_get(f->cfg, "tie_embeddings")),
        .head = strcmp(json_string_value(json_object_get(f->cfg, "head")), "scalar") == 0 ? HEAD_SCALAR : HEAD_LM};
    ck_assert_int_eq(model_create(&f->m, &mc, NULL), ERR_OK);
    for (int i = 0; i < f->m.n_tensors; i++) {
        const ModelTensor *t = &f->m.tensors[i];
        ck_assert_msg(safetensors_read(&f->st, t->name, ST_F32, t->ndim, t->shape, f->m.params + t->offset) == ERR_OK,
                      "%s", err_msg());
    }
    f->B = (int)cfg_num(f->cfg, "batch");
    f->T = (int)cfg_num(f->cfg, "seq");
    int64_t bt[2] = {f->B, f->T}, b1[1] = {f->B};
    size_t n = (size_t)f->B * f->T;
    f->tokens = xcalloc(n, sizeof(int32_t));
    f->targets = xcalloc(n, sizeof(int32_t));
    f->lengths = xcalloc(f->B, sizeof(int32_t));
    f->mask = xcalloc(n, sizeof(float));
    f->coef = xcalloc(f->B, sizeof(float));
    f->vtarget = xcalloc(n, sizeof(float));
    ck_assert_int_eq(safetensors_read(&f->st, "input.tokens", ST_I32, 2, bt, f->tokens), ERR_OK);
    ck_assert_int_eq(safetensors_read(&f->st, "input.lengths", ST_I32, 1, b1, f->lengths), ERR_OK);
    if (mc.head == HEAD_LM) {
        ck_assert_int_eq(safetensors_read(&f->st, "input.targets", ST_I32, 2, bt, f->targets), ERR_OK);
        ck_assert_int_eq(safetensors_read(&f->st, "input.mask", ST_F32, 2, bt, f->mask), ERR_OK);
    } else {
        ck_assert_int_eq(safetensors_read(&f->st, "input.coef", ST_F32, 1, b1, f->coef), ERR_OK);
        ck_assert_int_eq(safetensors_read(&f->st, "input.vtarget", ST_F32, 2, bt, f->vtarget), ERR_OK);
    }
    model_alloc_train(&f->m, f->B, f->T);
}

static void fixture_free(Fixture *f) {
    free(f->tokens);
    free(f->targets);
    free(f->lengths);
    free(f->mask);
    free(f->coef);
    free(f->vtarget);
    model_free(&f->m);
    json_decref(f->cfg);
    safetensors_close(&f->st);
}

static const float *ref_tensor(Fixture *f, const char *name, size_t numel) {
    const StTensor *t = safetensors_find(&f->st, name);
    ck_assert_msg(t != NULL, "fixture lacks %s", name);
    ck_assert_uint_eq(t->numel, numel);
    return safetensors_data(&f->st, t); /* our writer's alignment: 8 bytes */
}

/* Forward + loss + backward; returns the loss. Scalar loss as documented in tests/ref/README.md. */
static double fixture_step_grads(Fixture *f) {
    Model *m = &f->m;
    model_zero_grads(m);
    model_forward(m, f->tokens, f->B, f->T);
    double loss;
    if (m->cfg.head == HEAD_LM) {
        loss = model_lm_loss(m, f->targets, f->mask, f->B, f->T, 1.0f);
    } else {
        int nvalid = 0;
        for (int b = 0; b < f->B; b++) nvalid += f->lengths[b];
        loss = 0;
        memset(m->acts.dvalues, 0, sizeof(float) * f->B * f->T);
        for (int b = 0; b < f->B; b++) {
            int last = b * f->T + f->lengths[b] - 1;
            loss += (double)f->coef[b] * m->acts.values[last];
            m->acts.dvalues[last] += f->coef[b];
            for (int t = 0; t < f->lengths[b]; t++) {
                int n = b * f->T + t;
                double e = m->acts.values[n] - f->vtarget[n];
                loss += 0.5 * e * e / nvalid;
                m->acts.dvalues[n] += (float)(e / nvalid);
            }
        }
    }
    model_backward(m, f->tokens, f->B, f->T);
    return loss;
}

static void check_fixture(const char *name) {
    Fixture f;
    fixture_load(&f, name);
    Model *m = &f.m;
    double loss = fixture_step_grads(&f);
    /* outputs at valid positions */
    int lm = m->cfg.head == HEAD_LM, od = lm ? m->cfg.vocab_size : 1;
    const float *ref_out = ref_tensor(&f, lm ? "out.logits" : "out.values", (size_t)f.B * f.T * od);
    const float *out = lm ? m->acts.logits : m->acts.values;
    for (int b = 0; b < f.B; b++)
        for (int t = 0; t < f.lengths[b]; t++)
            for (int i = 0; i < od; i++) {
                size_t k = ((size_t)b * f.T + t) * od + i;
                ck_assert_msg(fabsf(out[k] - ref_out[k]) <= 1e-5f + 1e-4f * fabsf(ref_out[k]), "%s output b%d t%d i%d: %g vs %g",
                              name, b, t, i, out[k], ref_out[k]);
            }
    float ref_loss = ref_tensor(&f, "out.loss", 1)[0];
    ck_assert_msg(fabs(loss - ref_loss) <= 1e-5 + 1e-4 * fabs(ref_loss), "%s loss %g vs %g", name, loss, ref_loss);
    /* every gradient */
    char gname[128];
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        snprintf(gname, sizeof gname, "grad.%s", t->name);
        const float *ref = ref_tensor(&f, gname, t->numel);
        float scale = 0;
        for (size_t j = 0; j < t->numel; j++) scale = fmaxf(scale, fabsf(ref[j]));
        for (size_t j = 0; j < t->numel; j++) {
            float got = m->grads[t->offset + j];
            ck_assert_msg(fabsf(got - ref[j]) <= 1e-6f + 1e-3f * scale, "%s %s[%zu]: %g vs %g", name, gname, j, got, ref[j]);
        }
    }
    /* three clipped AdamW steps on the same batch */
    int steps = (int)cfg_num(f.cfg, "steps");
    const float *ref_norms = ref_tensor(&f, "out.grad_norm", steps), *ref_losses = ref_tensor(&f, "out.step_loss", steps);
    AdamWConfig ac = {(float)cfg_num(f.cfg, "beta1"), (float)cfg_num(f.cfg, "beta2"), (float)cfg_num(f.cfg, "eps"),
                      (float)cfg_num(f.cfg, "weight_decay")};
    AdamW opt;
    adamw_create(&opt, m->n_params);
    for (int s = 0; s < steps; s++) {
        double l = s == 0 ? loss : fixture_step_grads(&f), norm;
        ck_assert_msg(fabs(l - ref_losses[s]) <= 1e-5 + 1e-4 * fabs(ref_losses[s]), "%s step %d loss %g vs %g", name, s, l,
                      ref_losses[s]);
        ck_assert_int_eq(optim_finish_grads(m->grads, m->n_params, (float)cfg_num(f.cfg, "clip"), &norm), ERR_OK);
        ck_assert_msg(fabs(norm - ref_norms[s]) <= 1e-4 * ref_norms[s], "%s step %d grad norm %g vs %g", name, s, norm,
                      ref_norms[s]);
        adamw_step(&opt, m->params, m->grads, m->tensors, m->n_tensors, &ac, (float)cfg_num(f.cfg, "lr"));
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        snprintf(gname, sizeof gname, "step%d.%s", steps, t->name);
        const float *ref = ref_tensor(&f, gname, t->numel);
        for (size_t j = 0; j < t->numel; j++) {
            float got = m->params[t->offset + j];
            ck_assert_msg(fabsf(got - ref[j]) <= 2e-6f + 1e-4f * fabsf(ref[j]), "%s %s[%zu]: %.8g vs %.8g", name, gname, j,
                          got, ref[j]);
        }
    }
    adamw_free(&opt);
    fixture_free(&f);
}

START_TEST(test_ref_lm_gqa) { check_fixture("lm_gqa"); }
END_TEST
START_TEST(test_ref_lm_tied) { check_fixture("lm_tied"); }
END_TEST
START_TEST(test_ref_scalar_mqa) { check_fixture("scalar_mqa"); }
END_TEST

int main(void) {
    Suite *s = suite_create("model_ref");
    TCase *tc = tcase_create("pytorch reference");
    tcase_add_test(tc, test_ref_lm_gqa);
    tcase_add_test(tc, test_ref_lm_tied);
    tcase_add_test(tc, test_ref_scalar_mqa);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
