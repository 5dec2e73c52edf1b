/*
 * batching — the order in which a trainer visits its examples.
 *
 * A trainer that pads each micro-batch to its longest sequence wastes the rest of the (rows, T)
 * forward on padding; on the demo's comparisons, with plain shuffled batches of 16 pairs, almost half
 * of every forward was padding. batching_group_by_length keeps the randomness where it matters (which
 * examples share a window, the order of the batches) and sorts only inside a window of G batches, as
 * Hugging Face's group_by_length does: every example still comes once per epoch.
 */
#ifndef RLHF_BATCHING_H
#define RLHF_BATCHING_H

#include <stdint.h>

#include "rng.h"

/* Fisher–Yates shuffle of v[0..n). */
void batching_shuffle(uint32_t *v, int64_t n, Rng *r);

/* Reorders perm[0..n) (item ids, already shuffled) window by window: each window of group * B entries
 * is sorted by len[item] (ties by item id), cut into batches of B, and the window's whole batches are
 * shuffled; a last partial batch stays at the window's end. group <= 0 leaves perm as it is. The
 * result depends only on the arguments and the state of r. */
void batching_group_by_length(uint32_t *perm, int64_t n, const uint32_t *len, int64_t B, int64_t group, Rng *r);

#endif
