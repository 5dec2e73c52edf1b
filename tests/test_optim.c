/* optim: AdamW against values worked out by hand, clipping, NaN detection, schedules. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "optim.h"
#include "testutil.h"

/* Two tensors: a (1,2) matrix (decayed) and a (2) gain (not decayed), all starting at 1. */
static const ModelTensor tensors[2] = {
    {.name = "w", .ndim = 2, .shape = {1, 2}, .offset = 0, .numel = 2, .decay = 1},
    {.name = "g", .ndim = 1, .shape = {2, 0}, .offset = 2, .numel = 2, .decay = 0},
};

START_TEST(test_adamw_two_steps_by_hand) {
    /* lr 0.1, b1 0.9, b2 0.95, eps 1e-5, wd 0.1; gradients 0.5 then -0.25.
     * Step 1: m = 0.05, v = 0.0125, m^ = 0.5, v^ = 0.25: update 0.1*0.5/(0.5+1e-5) = 0.09999800004;
     *         decayed: 1*(1-0.01) - update = 0.89000199996 ; not decayed: 0.90000199996.
     * Step 2: m = 0.02, v = 0.015, m^ = 0.02/0.19, v^ = 0.015/0.0975: update 0.02683627...;
     *         decayed: 0.89000199996*0.99 - update = 0.85426571935 ; not decayed: 0.87316573934. */
    float p[4] = {1, 1, 1, 1}, g[4];
    AdamW opt;
    adamw_create(&opt, 4);
    AdamWConfig cfg = {0.9f, 0.95f, 1e-5f, 0.1f};
    for (int i = 0; i < 4; i++) g[i] = 0.5f;
    adamw_step(&opt, p, g, tensors, 2, &cfg, 0.1f);
    ck_assert_double_eq_tol(p[0], 0.89000199996, 2e-7);
    ck_assert_double_eq_tol(p[3], 0.90000199996, 2e-7);
    for (int i = 0; i < 4; i++) g[i] = -0.25f;
    adamw_step(&opt, p, g, tensors, 2, &cfg, 0.1f);
    ck_assert_double_eq_tol(p[1], 0.85426571935, 3e-7);
    ck_assert_double_eq_tol(p[2], 0.87316573934, 3e-7);
    ck_assert_int_eq(opt.t, 2);
    adamw_free(&opt);
}
END_TEST

START_TEST(test_clip_and_nan) {
    float g[4] = {3, 4, 0, 0};
    double norm;
    ck_assert_int_eq(optim_finish_grads(g, 4, 1.0f, &norm), ERR_OK);
    ck_assert_double_eq_tol(norm, 5.0, 1e-9);
    ck_assert_double_eq_tol(g[0], 0.6, 1e-6);
    ck_assert_double_eq_tol(g[1], 0.8, 1e-6);
    float small[2] = {0.3f, 0.4f};
    ck_assert_int_eq(optim_finish_grads(small, 2, 1.0f, &norm), ERR_OK);
    ck_assert_float_eq(small[0], 0.3f); /* under the limit: untouched */
    float bad[3] = {1, NAN, 2};
    ck_assert_int_eq(optim_finish_grads(bad, 3, 1.0f, &norm), ERR_RUNTIME);
    ck_assert_ptr_nonnull(strstr(err_msg(), "gradient 1 of 3"));
    float inf[2] = {INFINITY, 0};
    ck_assert_int_eq(optim_finish_grads(inf, 2, 0.0f, &norm), ERR_RUNTIME);
}
END_TEST

START_TEST(test_schedules) {
    LrSchedule s = {LR_COSINE, 1.0f, 10, 110, 0.1f};
    ck_assert_double_eq_tol(lr_at(&s, 0), 0.1, 1e-7);  /* warm-up 1/10 */
    ck_assert_double_eq_tol(lr_at(&s, 9), 1.0, 1e-7);  /* end of warm-up */
    ck_assert_double_eq_tol(lr_at(&s, 10), 1.0, 1e-7); /* cosine starts at the peak */
    ck_assert_double_eq_tol(lr_at(&s, 60), 0.55, 1e-6); /* halfway: floor + (1-floor)/2 */
    ck_assert_double_eq_tol(lr_at(&s, 110), 0.1, 1e-7);
    ck_assert_double_eq_tol(lr_at(&s, 500), 0.1, 1e-7); /* past the end: the floor */
    LrSchedule c = {LR_CONSTANT, 0.5f, 0, 100, 0.0f};
    ck_assert_float_eq(lr_at(&c, 0), 0.5f);
    ck_assert_float_eq(lr_at(&c, 99), 0.5f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, test_adamw_two_steps_by_hand);
    tcase_add_test(tc, test_clip_and_nan);
    tcase_add_test(tc, test_schedules);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
