/* batching: a shuffle and length-grouped batches are permutations; the windows hold the same items as
 * before, every whole batch of a window is a run of the window's sorted lengths, padding shrinks, and
 * the order depends only on the seed. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "batching.h"
#include "testutil.h"

enum { N = 1003, B = 8, G = 10 };

static void lengths(uint32_t *len) {
    Rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < N; i++) len[i] = 1 + rng_below(&r, 200);
}

static void shuffled(uint32_t *perm, Rng *r) {
    for (int i = 0; i < N; i++) perm[i] = (uint32_t)i;
    batching_shuffle(perm, N, r);
}

/* the padded size of consecutive batches of B (the last one partial), as a trainer pads them */
static int64_t padded(const uint32_t *perm, const uint32_t *len) {
    int64_t total = 0;
    for (int b0 = 0; b0 < N; b0 += B) {
        uint32_t mx = 0;
        int nb = N - b0 < B ? N - b0 : B;
        for (int j = 0; j < nb; j++) mx = len[perm[b0 + j]] > mx ? len[perm[b0 + j]] : mx;
        total += (int64_t)mx * nb;
    }
    return total;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

START_TEST(test_shuffle_is_permutation) {
    uint32_t perm[N];
    char seen[N] = {0};
    Rng r;
    rng_seed(&r, 1);
    shuffled(perm, &r);
    int moved = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_uint_lt(perm[i], N);
        ck_assert(!seen[perm[i]]);
        seen[perm[i]] = 1;
        moved += perm[i] != (uint32_t)i;
    }
    ck_assert_int_gt(moved, N / 2);
}
END_TEST

START_TEST(test_group_by_length_windows) {
    uint32_t len[N], before[N], perm[N];
    lengths(len);
    Rng r;
    rng_seed(&r, 2);
    shuffled(before, &r);
    memcpy(perm, before, sizeof perm);
    batching_group_by_length(perm, N, len, B, G, &r);
    const int win = G * B;
    for (int w0 = 0; w0 < N; w0 += win) {
        int m = N - w0 < win ? N - w0 : win;
        /* the same items in the window */
        uint32_t a[win], b[win];
        memcpy(a, before + w0, sizeof(uint32_t) * (size_t)m);
        memcpy(b, perm + w0, sizeof(uint32_t) * (size_t)m);
        qsort(a, (size_t)m, sizeof a[0], cmp_u32);
        qsort(b, (size_t)m, sizeof b[0], cmp_u32);
        ck_assert_mem_eq(a, b, sizeof(uint32_t) * (size_t)m);
        /* inside a batch the lengths ascend; two whole batches do not overlap in length (sorted runs) */
        for (int k0 = w0; k0 < w0 + m; k0 += B) {
            int nb = w0 + m - k0 < B ? w0 + m - k0 : B;
            for (int j = 1; j < nb; j++) ck_assert_uint_le(len[perm[k0 + j - 1]], len[perm[k0 + j]]);
            for (int k1 = w0; k1 < w0 + m; k1 += B) {
                int nb1 = w0 + m - k1 < B ? w0 + m - k1 : B;
                if (k1 == k0 || nb < B || nb1 < B) continue;
                ck_assert(len[perm[k0 + B - 1]] <= len[perm[k1]] || len[perm[k1 + B - 1]] <= len[perm[k0]]);
            }
        }
    }
    /* batches are not simply in ascending order: the batch order inside a window is shuffled */
    int descents = 0;
    for (int k = B; k + B <= N; k += B) descents += len[perm[k]] < len[perm[k - 1]];
    ck_assert_int_gt(descents, N / B / 4);
    /* padding: far less than with the plain shuffle */
    int64_t real = 0;
    for (int i = 0; i < N; i++) real += len[i];
    int64_t pad_plain = padded(before, len) - real, pad_grouped = padded(perm, len) - real;
    ck_assert_int_lt(pad_grouped * 5, pad_plain);
}
END_TEST

START_TEST(test_group_by_length_deterministic_and_off) {
    uint32_t len[N], p1[N], p2[N], p0[N];
    lengths(len);
    Rng a, b;
    rng_seed(&a, 3);
    rng_seed(&b, 3);
    shuffled(p1, &a);
    shuffled(p2, &b);
    batching_group_by_length(p1, N, len, B, G, &a);
    batching_group_by_length(p2, N, len, B, G, &b);
    ck_assert_mem_eq(p1, p2, sizeof p1);
    memcpy(p0, p2, sizeof p0);
    batching_group_by_length(p2, N, len, B, 0, &b);
    ck_assert_mem_eq(p0, p2, sizeof p0);
    /* a window larger than the data: one window, sorted batches, the partial one last */
    batching_group_by_length(p2, N, len, B, 1000, &b);
    for (int j = N - N % B + 1; j < N; j++) ck_assert_uint_le(len[p2[j - 1]], len[p2[j]]);
}
END_TEST

int main(void) {
    Suite *s = suite_create("batching");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_shuffle_is_permutation);
    tcase_add_test(tc, test_group_by_length_windows);
    tcase_add_test(tc, test_group_by_length_deterministic_and_off);
    suite_add_tcase(s, tc);
    return testutil_run(s);
}
