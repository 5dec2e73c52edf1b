#include "batching.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void batching_shuffle(uint32_t *v, int64_t n, Rng *r) {
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t j = rng_below(r, (uint32_t)(i + 1)), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

typedef struct {
    uint32_t len, item;
} LenItem;

static int len_item_cmp(const void *a, const void *b) {
    const LenItem *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

void batching_group_by_length(uint32_t *perm, int64_t n, const uint32_t *len, int64_t B, int64_t group, Rng *r) {
    if (group <= 0 || B <= 0 || n <= 1) return;
    const int64_t win = group * B, cap = win < n ? win : n;
    LenItem *li = xmalloc(sizeof *li * (size_t)cap);
    uint32_t *blocks = xmalloc(sizeof *blocks * (size_t)(cap / B + 1));
    for (int64_t w0 = 0; w0 < n; w0 += win) {
        const int64_t m = n - w0 < win ? n - w0 : win, nb = m / B;
        for (int64_t i = 0; i < m; i++) li[i] = (LenItem){len[perm[w0 + i]], perm[w0 + i]};
        qsort(li, (size_t)m, sizeof *li, len_item_cmp);
        for (int64_t k = 0; k < nb; k++) blocks[k] = (uint32_t)k;
        batching_shuffle(blocks, nb, r);
        for (int64_t k = 0; k < nb; k++)
            for (int64_t j = 0; j < B; j++) perm[w0 + k * B + j] = li[blocks[k] * B + j].item;
        for (int64_t i = nb * B; i < m; i++) perm[w0 + i] = li[i].item;
    }
    free(blocks);
    free(li);
}
