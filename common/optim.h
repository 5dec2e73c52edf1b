/*
 * optim — AdamW, gradient clipping, learning-rate schedules.
 *
 * AdamW follows torch.optim.AdamW: decoupled weight decay p <- p (1 - lr wd), then
 * m <- b1 m + (1-b1) g ; v <- b2 v + (1-b2) g^2 ; p <- p - lr m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps).
 * m and v are flat buffers in the model's parameter layout; decay applies only to tensors whose
 * table entry says so (matrices, not RMSNorm gains). Llama 2: b1 0.9, b2 0.95, eps 1e-5, wd 0.1.
 *
 * Every trainer passes its gradients through optim_finish_grads between backward and the step:
 * today it checks them for NaN/Inf and clips the global norm; the data-parallel all-reduce goes
 * there too, so no trainer has to change when training scales out.
 */
#ifndef RLHF_OPTIM_H
#define RLHF_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "model.h"

typedef struct {
    float beta1, beta2, eps, weight_decay;
} AdamWConfig;

typedef struct {
    float *m, *v; /* (n) each */
    size_t n;
    int64_t t;    /* steps taken */
} AdamW;

void adamw_create(AdamW *opt, size_t n);
void adamw_free(AdamW *opt);
/* One AdamW step on params[0..n) with learning rate lr; decay for the tensors marked in the table. */
void adamw_step(AdamW *opt, float *params, const float *grads, const ModelTensor *tensors, int n_tensors,
                const AdamWConfig *cfg, float lr);

/* Global L2 norm of grads (accumulated in double, fixed order). */
double grads_norm(const float *grads, size_t n);
/* The seam between backward and the step: reduce (one process today), check finiteness, clip the global
 * norm to max_norm (<= 0: no clipping). *norm_out gets the norm before clipping. ERR_RUNTIME when a
 * gradient is NaN or Inf: the caller must skip the step (and usually stop). */
Err optim_finish_grads(float *grads, size_t n, float max_norm, double *norm_out);

typedef enum { LR_CONSTANT = 0, LR_COSINE = 1 } LrKind;
typedef struct {
    LrKind kind;
    float peak;       /* the rate after warm-up */
    int64_t warmup;   /* steps of linear warm-up from peak/warmup to peak */
    int64_t total;    /* steps in the run (cosine reaches its floor here) */
    float floor_frac; /* cosine decays to floor_frac * peak (Llama 2 pretraining: 0.1) */
} LrSchedule;

/* Learning rate for 0-based step. */
float lr_at(const LrSchedule *s, int64_t step);

#endif
