/*
 * sampler: greedy is the argmax; top-k 1 is greedy; empirical frequencies match the intended
 * distribution; top-p keeps exactly the smallest nucleus; log-probabilities are exact; results depend
 * only on the sequence's seed; bad parameters and diverged logits are rejected.
 *
 * Frequency tolerance: with N draws a frequency has standard deviation sqrt(p (1-p) / N); we allow
 * 5 of those (a false alarm about once in 1.7 million per token; the seeds are fixed anyway).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"
#include "testutil.h"
#include "util.h"

static void random_logits(float *l, int V, uint64_t seed, float scale) {
    Rng r;
    rng_seed(&r, seed);
    for (int v = 0; v < V; v++) l[v] = scale * rng_normal(&r);
}

/* log softmax(logits / T)[id] in double, the slow obvious way */
static double ref_logp(const float *l, int V, double T, int id) {
    double mx = -INFINITY, z = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, l[v] / T);
    for (int v = 0; v < V; v++) z += exp(l[v] / T - mx);
    return l[id] / T - mx - log(z);
}

static Sampler make(float T, int k, float p, int V) {
    Sampler s;
    SamplerConfig c = {T, k, p};
    ck_assert_msg(sampler_create(&s, &c, V) == ERR_OK, "%s", err_msg());
    return s;
}

static void check_freqs(const int *counts, const double *p, int V, int N) {
    for (int v = 0; v < V; v++) {
        double f = counts[v] / (double)N, tol = 5 * sqrt(p[v] * (1 - p[v]) / N);
        ck_assert_msg(fabs(f - p[v]) <= tol || (p[v] == 0 && counts[v] == 0), "token %d: frequency %.5f, expected %.5f (tol %.5f)",
                      v, f, p[v], tol);
    }
}

START_TEST(test_greedy_is_argmax) {
    enum { V = 1000 };
    float l[V];
    Sampler s = make(0, 0, 1, V);
    Rng r;
    rng_seed(&r, 1);
    for (int row = 0; row < 50; row++) {
        random_logits(l, V, 100 + row, 3);
        int want = 0;
        for (int v = 1; v < V; v++)
            if (l[v] > l[want]) want = v;
        float lp = 1, lr = 1;
        Rng before = r;
        ck_assert_int_eq(sampler_sample(&s, l, &r, &lp, &lr), want);
        ck_assert_uint_eq(before.state, r.state); /* greedy draws nothing */
        ck_assert(lp == 0);
        ck_assert_msg(fabs(lr - ref_logp(l, V, 1, want)) < 1e-5, "%g vs %g", lr, ref_logp(l, V, 1, want));
    }
    /* ties go to the lowest id */
    for (int v = 0; v < V; v++) l[v] = 0;
    l[500] = l[7] = l[900] = 2;
    ck_assert_int_eq(sampler_sample(&s, l, &r, NULL, NULL), 7);
    sampler_free(&s);
}
END_TEST

START_TEST(test_top_k_1_is_greedy) {
    enum { V = 300 };
    float l[V];
    Sampler g = make(0, 0, 1, V), k1 = make(1.7f, 1, 0.9f, V);
    Rng r;
    rng_seed(&r, 2);
    for (int row = 0; row < 50; row++) {
        random_logits(l, V, 200 + row, 1);
        if (row == 0) l[3] = l[250] = 9; /* a tie */
        float lp = 1;
        ck_assert_int_eq(sampler_sample(&k1, l, &r, &lp, NULL), sampler_sample(&g, l, &r, NULL, NULL));
        ck_assert(lp == 0); /* the only token left has probability 1 */
    }
    sampler_free(&g);
    sampler_free(&k1);
}
END_TEST

START_TEST(test_temperature_distribution) {
    enum { V = 6, N = 200000 };
    const float l[V] = {1.0f, 0.5f, -0.3f, 2.0f, 0.0f, -1.5f};
    const float temps[] = {0.6f, 1.0f, 2.5f};
    for (size_t ti = 0; ti < sizeof temps / sizeof *temps; ti++) {
        Sampler s = make(temps[ti], 0, 1, V);
        Rng r;
        rng_seed(&r, 3 + ti);
        int counts[V] = {0};
        double p[V];
        for (int v = 0; v < V; v++) p[v] = exp(ref_logp(l, V, temps[ti], v));
        for (int i = 0; i < N; i++) {
            float lp, lr;
            int t = sampler_sample(&s, l, &r, &lp, &lr);
            ck_assert(t >= 0 && t < V);
            counts[t]++;
            if (i < 100) {
                ck_assert(fabs(lp - log(p[t])) < 1e-5);
                ck_assert(fabs(lr - ref_logp(l, V, 1, t)) < 1e-5);
            }
        }
        check_freqs(counts, p, V, N);
        sampler_free(&s);
    }
}
END_TEST

START_TEST(test_top_k_distribution) {
    enum { V = 8, N = 100000, K = 3 };
    const float l[V] = {0.2f, 1.5f, -1.0f, 1.4f, 0.9f, 1.5f, -3.0f, 0.0f}; /* top 3: ids 1, 5 (tie), 3 */
    Sampler s = make(0.9f, K, 1, V);
    Rng r;
    rng_seed(&r, 4);
    int counts[V] = {0};
    double p[V] = {0}, z = 0;
    const int keep[K] = {1, 5, 3};
    for (int i = 0; i < K; i++) z += exp(l[keep[i]] / 0.9);
    for (int i = 0; i < K; i++) p[keep[i]] = exp(l[keep[i]] / 0.9) / z;
    for (int i = 0; i < N; i++) {
        float lp;
        int t = sampler_sample(&s, l, &r, &lp, NULL);
        counts[t]++;
        ck_assert(p[t] > 0);
        ck_assert(fabs(lp - log(p[t])) < 1e-5);
    }
    check_freqs(counts, p, V, N);
    sampler_free(&s);
    /* the tie at the boundary goes to the lower id: k = 1 keeps id 1, not 5 */
    s = make(1, 1, 1, V);
    ck_assert_int_eq(sampler_sample(&s, l, &r, NULL, NULL), 1);
    sampler_free(&s);
}
END_TEST

/* Probabilities 0.5, 0.3, 0.15, 0.05 (ids shuffled): the nucleus for each p, by hand. */
START_TEST(test_top_p_smallest_nucleus) {
    enum { V = 4, N = 50000 };
    const float l[V] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    const struct {
        float p;
        int n_keep;
    } cases[] = {{0.3f, 1}, {0.49f, 1}, {0.51f, 2}, {0.79f, 2}, {0.81f, 3}, {0.94f, 3}, {0.96f, 4}, {1.0f, 4}};
    const int by_prob[V] = {1, 3, 0, 2};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        Sampler s = make(1, 0, cases[c].p, V);
        Rng r;
        rng_seed(&r, 5 + c);
        double p[V] = {0}, mass = 0;
        for (int i = 0; i < cases[c].n_keep; i++) mass += exp(l[by_prob[i]]);
        for (int i = 0; i < cases[c].n_keep; i++) p[by_prob[i]] = exp(l[by_prob[i]]) / mass;
        int counts[V] = {0};
        for (int i = 0; i < N; i++) {
            float lp;
            int t = sampler_sample(&s, l, &r, &lp, NULL);
            ck_assert_msg(p[t] > 0, "p=%g drew token %d outside the nucleus", cases[c].p, t);
            ck_assert(fabs(lp - log(p[t])) < 1e-5);
            counts[t]++;
        }
        check_freqs(counts, p, V, N);
        sampler_free(&s);
    }
}
END_TEST

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

/* A large vocabulary, with top-k and top-p together: every draw is inside the reference nucleus
 * (computed by sorting everything) and its logp is exact. */
START_TEST(test_top_p_large_vocab_and_with_top_k) {
    enum { V = 5000 };
    static float l[V];
    static double sorted[V];
    random_logits(l, V, 6, 2.5f);
    const float T = 0.8f, P = 0.9f;
    const int ks[] = {0, 40};
    for (size_t ki = 0; ki < 2; ki++) {
        int k = ks[ki] ? ks[ki] : V;
        for (int v = 0; v < V; v++) sorted[v] = exp(l[v] / T);
        qsort(sorted, V, sizeof(double), cmp_desc);
        double total = 0, cum = 0;
        for (int i = 0; i < k; i++) total += sorted[i];
        int n = 0;
        while (cum < P * total) cum += sorted[n++];
        double threshold = sorted[n - 1]; /* smallest kept weight (no ties in random logits) */
        Sampler s = make(T, ks[ki], P, V);
        Rng r;
        rng_seed(&r, 7);
        for (int i = 0; i < 3000; i++) {
            float lp;
            int t = sampler_sample(&s, l, &r, &lp, NULL);
            double w = exp(l[t] / T);
            ck_assert_msg(w >= threshold, "k=%d: token %d (weight %g) is outside the nucleus of %d (threshold %g)", ks[ki], t,
                          w, n, threshold);
            ck_assert_msg(fabs(lp - log(w / cum)) < 1e-4, "logp %g vs %g", lp, log(w / cum));
        }
        ck_assert(n > 1 && n < k);
        sampler_free(&s);
    }
}
END_TEST

START_TEST(test_deterministic_per_sequence) {
    enum { V = 64, B = 8, STEPS = 20 };
    static float logits[B][STEPS][V];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < STEPS; t++) random_logits(logits[b][t], V, 1000 + b * STEPS + t, 1.5f);
    Sampler s = make(1.0f, 20, 0.95f, V);
    Rng run;
    rng_seed(&run, 99);
    int a[B][STEPS], c[B][STEPS];
    /* sequence by sequence */
    for (int b = 0; b < B; b++) {
        Rng r = rng_fork(&run, (uint64_t)b);
        for (int t = 0; t < STEPS; t++) a[b][t] = sampler_sample(&s, logits[b][t], &r, NULL, NULL);
    }
    /* interleaved, in another order, as a batch of decoders would: same tokens */
    Rng rs[B];
    for (int b = 0; b < B; b++) rs[b] = rng_fork(&run, (uint64_t)b);
    for (int t = 0; t < STEPS; t++)
        for (int i = 0; i < B; i++) {
            int b = (i * 3 + t) % B;
            c[b][t] = sampler_sample(&s, logits[b][t], &rs[b], NULL, NULL);
        }
    ck_assert(memcmp(a, c, sizeof a) == 0);
    /* another run seed gives other tokens */
    Rng other;
    rng_seed(&other, 100);
    Rng r = rng_fork(&other, 0);
    int same = 0;
    for (int t = 0; t < STEPS; t++) same += sampler_sample(&s, logits[0][t], &r, NULL, NULL) == a[0][t];
    ck_assert_int_lt(same, STEPS);
    sampler_free(&s);
}
END_TEST

START_TEST(test_bad_parameters_and_logits) {
    Sampler s;
    const struct {
        SamplerConfig c;
        int V;
        const char *needle;
    } bad[] = {
        {{-0.5f, 0, 1}, 10, "temperature"}, {{NAN, 0, 1}, 10, "temperature"}, {{INFINITY, 0, 1}, 10, "temperature"},
        {{1, -1, 1}, 10, "top_k"},          {{1, 0, 0}, 10, "top_p"},          {{1, 0, 1.01f}, 10, "top_p"},
        {{1, 0, NAN}, 10, "top_p"},         {{1, 0, -0.2f}, 10, "top_p"},      {{1, 0, 1}, 0, "vocab_size"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(sampler_create(&s, &bad[i].c, bad[i].V), ERR_INPUT);
        ck_assert_msg(strstr(err_msg(), bad[i].needle), "case %zu: '%s'", i, err_msg());
    }
    s = make(1, 0, 0.9f, 4);
    Rng r;
    rng_seed(&r, 1);
    float nan_row[4] = {0, NAN, 1, 2}, inf_row[4] = {0, INFINITY, 1, 2}, ninf[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    float lp = 7;
    ck_assert_int_eq(sampler_sample(&s, nan_row, &r, &lp, NULL), -1);
    ck_assert_int_eq(sampler_sample(&s, inf_row, &r, &lp, NULL), -1);
    ck_assert_int_eq(sampler_sample(&s, ninf, &r, &lp, NULL), -1);
    ck_assert(lp == 7);
    /* -inf on some tokens is a mask, not an error: they are never drawn */
    float masked[4] = {-INFINITY, 0.5f, -INFINITY, 0.2f};
    for (int i = 0; i < 1000; i++) {
        int t = sampler_sample(&s, masked, &r, NULL, NULL);
        ck_assert(t == 1 || t == 3);
    }
    sampler_free(&s);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_greedy_is_argmax);
    tcase_add_test(tc, test_top_k_1_is_greedy);
    tcase_add_test(tc, test_temperature_distribution);
    tcase_add_test(tc, test_top_k_distribution);
    tcase_add_test(tc, test_top_p_smallest_nucleus);
    tcase_add_test(tc, test_top_p_large_vocab_and_with_top_k);
    tcase_add_test(tc, test_deterministic_per_sequence);
    tcase_add_test(tc, test_bad_parameters_and_logits);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
