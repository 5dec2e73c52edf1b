/*
 * threads — one thread count for the whole process.
 *
 * OpenBLAS is linked in its OpenMP build, so BLAS calls and our own `omp parallel` loops share one
 * pool; this sets that pool's size once (and tells OpenBLAS too). Two pools on two cores would each
 * believe they own both cores and slow each other down several times over.
 */
#ifndef RLHF_THREADS_H
#define RLHF_THREADS_H

/* n > 0: use n threads; n <= 0: OMP_NUM_THREADS if set, else every core. Returns the count in force. */
int threads_set(int n);

#endif
