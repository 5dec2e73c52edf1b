/*
 * fileio — files written atomically, files mapped read-only.
 *
 * A checkpoint or export is never seen half-written: it goes to "<path>.tmp.<pid>" in the same
 * directory, is flushed and fsync'ed, then renamed over <path> (atomic on POSIX file systems), and
 * the directory is fsync'ed so the rename itself survives a crash. On any failure the temporary
 * file is removed and <path> is untouched.
 *
 *     AtomicFile af;
 *     if ((rc = atomic_open(&af, path)) != ERR_OK) return rc;
 *     fwrite(..., af.f);                      // any stdio writes
 *     return atomic_commit(&af);              // or atomic_abort(&af) to give up
 */
#ifndef RLHF_FILEIO_H
#define RLHF_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

typedef struct {
    FILE *f;
    char *path, *tmp;
} AtomicFile;

Err atomic_open(AtomicFile *af, const char *path);
/* Flush, fsync, rename into place, fsync the directory. Frees af in every case. */
Err atomic_commit(AtomicFile *af);
/* Remove the temporary file; path is untouched. */
void atomic_abort(AtomicFile *af);

/* A whole file mapped read-only (pages shared between processes that map the same file). */
typedef struct {
    void *data;
    size_t size;
} MappedFile;

Err file_map(MappedFile *mf, const char *path);
void file_unmap(MappedFile *mf);

#endif
