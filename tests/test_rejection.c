/* rejection sampling without models: best-of-N curves on hand-made score tables (by hand and by
 * enumerating every subset), the Llama 2 gating of the two rewards, arg-max selection and pooling
 * across iterations. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "rsstats.h"
#include "testutil.h"

/* Every n-subset of s[0..k-1] (k <= 16), by bitmask: mean of its max and of its median. */
static void brute_force(const float *s, int k, int n, double *max, double *median) {
    double smax = 0, smed = 0;
    long count = 0;
    for (unsigned mask = 0; mask < (1u << k); mask++) {
        if (__builtin_popcount(mask) != n) continue;
        float v[16];
        int m = 0;
        for (int i = 0; i < k; i++)
            if (mask & (1u << i)) v[m++] = s[i];
        for (int i = 1; i < m; i++) /* insertion sort */
            for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
                float t = v[j];
                v[j] = v[j - 1];
                v[j - 1] = t;
            }
        smax += v[m - 1];
        smed += m % 2 ? (double)v[m / 2] : 0.5 * ((double)v[m / 2 - 1] + v[m / 2]);
        count++;
    }
    *max = smax / (double)count;
    *median = smed / (double)count;
}

START_TEST(test_expected_by_hand) {
    /* {1, 2, 3} in scrambled order. n = 2: subsets {1,2} {1,3} {2,3}: max (2+3+3)/3, median (1.5+2+2.5)/3. */
    const float s[3] = {3, 1, 2};
    double mx, md;
    rsstats_expected(s, 3, 1, &mx, &md);
    ck_assert_double_eq_tol(mx, 2.0, 1e-12);
    ck_assert_double_eq_tol(md, 2.0, 1e-12);
    rsstats_expected(s, 3, 2, &mx, &md);
    ck_assert_double_eq_tol(mx, 8.0 / 3, 1e-12);
    ck_assert_double_eq_tol(md, 2.0, 1e-12);
    rsstats_expected(s, 3, 3, &mx, &md);
    ck_assert_double_eq_tol(mx, 3.0, 1e-12);
    ck_assert_double_eq_tol(md, 2.0, 1e-12);
    /* ties: {0, 0, 1, 1}, n = 2: of 6 pairs one is {0,0}, one {1,1}, four mixed -> max 5/6, median 0.5 */
    const float t[4] = {1, 0, 1, 0};
    rsstats_expected(t, 4, 2, &mx, NULL);
    ck_assert_double_eq_tol(mx, 5.0 / 6, 1e-12);
    rsstats_expected(t, 4, 2, NULL, &md);
    ck_assert_double_eq_tol(md, 0.5, 1e-12);
}
END_TEST

START_TEST(test_expected_matches_enumeration) {
    srand(3);
    for (int k = 1; k <= 12; k++) {
        float s[16];
        for (int i = 0; i < k; i++) s[i] = (float)(rand() % 7) - 2.5f + (float)(rand() % 100) / 100.0f;
        for (int n = 1; n <= k; n++) {
            double mx, md, bmx, bmd;
            rsstats_expected(s, k, n, &mx, &md);
            brute_force(s, k, n, &bmx, &bmd);
            ck_assert_msg(fabs(mx - bmx) < 1e-9 && fabs(md - bmd) < 1e-9, "k=%d n=%d: max %.12g vs %.12g, median %.12g vs %.12g",
                          k, n, mx, bmx, md, bmd);
        }
    }
}
END_TEST

START_TEST(test_curve_table) {
    /* A hand-made (P=2, K=4) table. Prompt 0: {0.1, 0.4, 0.2, 0.3}; prompt 1: {1, 1, 1, 1}.
     * Prompt 0 sorted 0.1 0.2 0.3 0.4: E[max of 2] = (0.2 + 2*0.3 + 3*0.4)/6 = 2.0/6; of 3 = (0.3 + 3*0.4)/4. */
    const float s[8] = {0.1f, 0.4f, 0.2f, 0.3f, 1, 1, 1, 1};
    double mx[4], md[4];
    rsstats_curve(s, 2, 4, mx, md);
    ck_assert_double_eq_tol(mx[0], (0.25 + 1) / 2, 1e-6);
    ck_assert_double_eq_tol(mx[1], (2.0 / 6 + 1) / 2, 1e-6);
    ck_assert_double_eq_tol(mx[2], (1.5 / 4 + 1) / 2, 1e-6);
    ck_assert_double_eq_tol(mx[3], (0.4 + 1) / 2, 1e-6);
    /* median of all 4 of prompt 0 is 0.25, of one sample its mean 0.25 */
    ck_assert_double_eq_tol(md[0], (0.25 + 1) / 2, 1e-6);
    ck_assert_double_eq_tol(md[3], (0.25 + 1) / 2, 1e-6);
    /* the max curve never falls with N; the median stays between min and max */
    for (int n = 1; n < 4; n++) ck_assert(mx[n] >= mx[n - 1] - 1e-12);
    for (int n = 0; n < 4; n++) ck_assert(md[n] <= mx[n] + 1e-12 && md[n] >= (0.1 + 1) / 2 - 1e-12);
}
END_TEST

START_TEST(test_argmax) {
    const float a[5] = {0.1f, 0.7f, -1, 0.7f, 0.2f};
    ck_assert_int_eq(rsstats_argmax(a, 5), 1); /* first of the tied maxima */
    const float b[3] = {NAN, -3, -2};
    ck_assert_int_eq(rsstats_argmax(b, 3), 2); /* NaN never wins */
    const float c[1] = {5};
    ck_assert_int_eq(rsstats_argmax(c, 1), 0);
}
END_TEST

/* The kept sample is the arg-max of the combined reward, which is not the arg-max of either model. */
START_TEST(test_gating_picks_combined_argmax) {
    const float thr = 0.15f;
    /* logit(0.15) = -1.7346: a safety score below it marks the response as likely unsafe. */
    const float help[4] = {3.0f, 1.0f, 2.0f, 0.5f};
    const float safe[4] = {-2.5f, 0.4f, -1.0f, 2.0f};
    float r[4];
    /* A helpfulness prompt: sample 0 is the most helpful but sigmoid(-2.5) = 0.076 < 0.15, so its
     * safety score (-2.5) ranks it; the others keep their helpfulness score: 1.0, 2.0, 0.5 -> sample 2. */
    for (int j = 0; j < 4; j++) r[j] = rsstats_rank_score(help[j], safe[j], 0, thr);
    ck_assert_float_eq(r[0], -2.5f);
    ck_assert_float_eq(r[2], 2.0f);
    ck_assert_int_eq(rsstats_argmax(r, 4), 2);
    /* A safety prompt: the safety score ranks every sample -> sample 3. */
    for (int j = 0; j < 4; j++) r[j] = rsstats_rank_score(help[j], safe[j], 1, thr);
    ck_assert_int_eq(rsstats_argmax(r, 4), 3);
    /* A higher threshold (0.3; sigmoid(-1) = 0.27) also sends sample 2 to its safety score -> sample 1. */
    for (int j = 0; j < 4; j++) r[j] = rsstats_rank_score(help[j], safe[j], 0, 0.3f);
    ck_assert_int_eq(rsstats_argmax(r, 4), 1);
    /* One model only: its own score, whatever the prompt. */
    for (int j = 0; j < 4; j++) r[j] = rsstats_rank_score(help[j], NAN, 1, thr);
    ck_assert_int_eq(rsstats_argmax(r, 4), 0);
    for (int j = 0; j < 4; j++) r[j] = rsstats_rank_score(NAN, safe[j], 0, thr);
    ck_assert_int_eq(rsstats_argmax(r, 4), 3);
}
END_TEST

START_TEST(test_pool_best_across_iterations) {
    /* Three prompts; candidates listed oldest iteration first, as the program pools them.
     * prompt 0: iteration 1 had 0.9, iteration 2 only 0.5 and 0.6 -> the old answer (index 0) is kept.
     * prompt 1: iteration 2 beats iteration 1. prompt 2: a tie between iterations -> the older one.
     * group 3 has no candidate. */
    const int64_t group[] = {0, 1, 2, 0, 0, 1, 2, 1};
    const float score[] = {0.9f, 0.1f, 0.4f, 0.5f, 0.6f, 0.8f, 0.4f, NAN};
    int64_t best[4];
    rsstats_best_per_group(group, score, 8, 4, best);
    ck_assert_int_eq(best[0], 0);
    ck_assert_int_eq(best[1], 5);
    ck_assert_int_eq(best[2], 2);
    ck_assert_int_eq(best[3], -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("rejection");
    TCase *tc = tcase_create("rsstats");
    tcase_add_test(tc, test_expected_by_hand);
    tcase_add_test(tc, test_expected_matches_enumeration);
    tcase_add_test(tc, test_curve_table);
    tcase_add_test(tc, test_argmax);
    tcase_add_test(tc, test_gating_picks_combined_argmax);
    tcase_add_test(tc, test_pool_best_across_iterations);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
