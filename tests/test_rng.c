/* rng: determinism, ranges and rough moments. */
#include <check.h>
#include <math.h>

#include "rng.h"
#include "testutil.h"

START_TEST(test_same_seed_same_stream) {
    Rng a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) ck_assert_uint_eq(rng_u64(&a), rng_u64(&b));
    rng_seed(&b, 43);
    rng_seed(&a, 42);
    ck_assert_uint_ne(rng_u64(&a), rng_u64(&b));
}
END_TEST

START_TEST(test_ranges_and_moments) {
    Rng r;
    rng_seed(&r, 7);
    int counts[7] = {0};
    double sum = 0, sumsq = 0, usum = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        uint32_t k = rng_below(&r, 7);
        ck_assert_uint_lt(k, 7);
        counts[k]++;
        float u = rng_uniform(&r);
        ck_assert(u >= 0.0f && u < 1.0f);
        usum += u;
        float z = rng_normal(&r);
        sum += z;
        sumsq += (double)z * z;
    }
    for (int k = 0; k < 7; k++) ck_assert(fabs(counts[k] / (double)n - 1.0 / 7) < 0.005);
    ck_assert(fabs(usum / n - 0.5) < 0.005);
    ck_assert(fabs(sum / n) < 0.01);
    ck_assert(fabs(sumsq / n - 1.0) < 0.02);
}
END_TEST

START_TEST(test_fork_independent_of_parent_use) {
    Rng p;
    rng_seed(&p, 5);
    Rng c1 = rng_fork(&p, 3), c2 = rng_fork(&p, 3), c3 = rng_fork(&p, 4);
    ck_assert_uint_eq(rng_u64(&c1), rng_u64(&c2));
    ck_assert_uint_ne(rng_u64(&c1), rng_u64(&c3));
}
END_TEST

int main(void) {
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_same_seed_same_stream);
    tcase_add_test(tc, test_ranges_and_moments);
    tcase_add_test(tc, test_fork_independent_of_parent_use);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
