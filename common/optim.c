#include "optim.h"

#include <math.h>
#include <string.h>

#include "util.h"

void adamw_create(AdamW *opt, size_t n) {
    opt->m = xaligned_calloc(n * sizeof(float));
    opt->v = xaligned_calloc(n * sizeof(float));
    opt->n = n;
    opt->t = 0;
}

void adamw_free(AdamW *opt) {
    free(opt->m);
    free(opt->v);
    memset(opt, 0, sizeof *opt);
}

static void adamw_range(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd,
                        const AdamWConfig *c, float bc1, float bc2) {
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps, decay = 1.0f - lr * wd;
    /* simd: the four arrays never overlap (and -O2 would not version the loop for aliasing) */
#pragma omp parallel for simd if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float mhat = m[i] / bc1, vhat = v[i] / bc2;
        p[i] = p[i] * decay - lr * mhat / (sqrtf(vhat) + eps);
    }
}

void adamw_step(AdamW *opt, float *params, const float *grads, const ModelTensor *tensors, int n_tensors,
                const AdamWConfig *cfg, float lr) {
    opt->t++;
    float bc1 = (float)(1.0 - pow(cfg->beta1, (double)opt->t));
    float bc2 = (float)(1.0 - pow(cfg->beta2, (double)opt->t));
    for (int i = 0; i < n_tensors; i++) {
        const ModelTensor *t = &tensors[i];
        ASSERT(t->offset + t->numel <= opt->n);
        adamw_range(params + t->offset, grads + t->offset, opt->m + t->offset, opt->v + t->offset, t->numel, lr,
                    t->decay ? cfg->weight_decay : 0.0f, cfg, bc1, bc2);
    }
}

double grads_norm(const float *grads, size_t n) {
    /* Fixed blocks, each summed in double, then the block sums in order: the same bits whatever the
     * thread count, and the blocks run in parallel. */
    enum { BLOCK = 1 << 16 };
    size_t nblocks = (n + BLOCK - 1) / BLOCK;
    double *partial = xcalloc(nblocks ? nblocks : 1, sizeof(double));
#pragma omp parallel for schedule(static) if (nblocks > 1)
    for (size_t b = 0; b < nblocks; b++) {
        size_t i0 = b * BLOCK, i1 = i0 + BLOCK < n ? i0 + BLOCK : n;
        double ss = 0.0;
#pragma omp simd reduction(+ : ss)
        for (size_t i = i0; i < i1; i++) ss += (double)grads[i] * grads[i];
        partial[b] = ss;
    }
    double ss = 0.0;
    for (size_t b = 0; b < nblocks; b++) ss += partial[b];
    free(partial);
    return sqrt(ss);
}

Err optim_finish_grads(float *grads, size_t n, float max_norm, double *norm_out) {
    /* (multi-process training: the all-reduce of grads across ranks happens here, first) */
    double norm = grads_norm(grads, n);
    if (norm_out) *norm_out = norm;
    if (!isfinite(norm)) {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(grads[i])) return err_set(ERR_RUNTIME, "gradient %zu of %zu is %g", i, n, (double)grads[i]);
        return err_set(ERR_RUNTIME, "gradient norm overflowed");
    }
    if (max_norm > 0.0f && norm > max_norm) {
        /* torch.nn.utils.clip_grad_norm_ scales by max_norm / (norm + 1e-6) */
        float s = (float)(max_norm / (norm + 1e-6));
#pragma omp parallel for if (n > 65536)
        for (size_t i = 0; i < n; i++) grads[i] *= s;
    }
    return ERR_OK;
}

float lr_at(const LrSchedule *s, int64_t step) {
    if (s->warmup > 0 && step < s->warmup) return s->peak * (float)(step + 1) / (float)s->warmup;
    if (s->kind == LR_CONSTANT) return s->peak;
    int64_t span = s->total - s->warmup;
    if (span <= 0) return s->peak;
    double progress = (double)(step - s->warmup) / (double)span;
    if (progress > 1.0) progress = 1.0;
    double cosine = 0.5 * (1.0 + cos(M_PI * progress));
    return (float)(s->peak * (s->floor_frac + (1.0 - s->floor_frac) * cosine));
}
