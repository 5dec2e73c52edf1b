/*
 * util — invariants and allocation.
 *
 * ASSERT is for programming errors (a shape that cannot happen, a NULL that was checked earlier):
 * it prints file:line and the failed condition, then aborts. It stays on in release builds; the
 * checks it guards are never in an inner loop. Failures caused by the outside world go through err.h.
 * xmalloc/xcalloc abort with a message when memory runs out, so callers never test for NULL.
 */
#ifndef RLHF_UTIL_H
#define RLHF_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define ASSERT(cond)                                                                              \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* A formatted string in a new buffer of the right size (free with free()). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 64-byte aligned, zeroed; free with free(). For parameter, gradient and activation buffers. */
void *xaligned_calloc(size_t n);

#endif
