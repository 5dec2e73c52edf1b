#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

Err atomic_open(AtomicFile *af, const char *path) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->tmp = xmalloc(n);
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        Err rc = err_set(ERR_RUNTIME, "%s: cannot create: %s", af->tmp, strerror(errno));
        free(af->tmp);
        af->tmp = NULL;
        return rc;
    }
    af->path = xstrdup(path);
    return ERR_OK;
}

static void atomic_free(AtomicFile *af) {
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

void atomic_abort(AtomicFile *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    atomic_free(af);
}

Err atomic_commit(AtomicFile *af) {
    Err rc = ERR_OK;
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0)
        rc = err_set(ERR_RUNTIME, "%s: cannot write: %s", af->path, strerror(errno));
    if (fclose(af->f) != 0 && rc == ERR_OK) rc = err_set(ERR_RUNTIME, "%s: cannot write: %s", af->path, strerror(errno));
    af->f = NULL;
    if (rc == ERR_OK && rename(af->tmp, af->path) != 0)
        rc = err_set(ERR_RUNTIME, "%s: cannot rename into place: %s", af->path, strerror(errno));
    if (rc != ERR_OK) {
        unlink(af->tmp);
        atomic_free(af);
        return rc;
    }
    char *dir = xstrdup(af->path);
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { /* make the rename durable; a file system that cannot fsync a directory is no error */
        fsync(fd);
        close(fd);
    }
    free(dir);
    atomic_free(af);
    return ERR_OK;
}

Err file_map(MappedFile *mf, const char *path) {
    memset(mf, 0, sizeof *mf);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_set(errno == ENOENT ? ERR_INPUT : ERR_RUNTIME, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return err_set(ERR_RUNTIME, "%s: %s", path, strerror(errno));
    }
    mf->size = (size_t)st.st_size;
    if (mf->size > 0) {
        mf->data = mmap(NULL, mf->size, PROT_READ, MAP_SHARED, fd, 0);
        if (mf->data == MAP_FAILED) {
            mf->data = NULL;
            close(fd);
            return err_set(ERR_RUNTIME, "%s: cannot map: %s", path, strerror(errno));
        }
    }
    close(fd);
    return ERR_OK;
}

void file_unmap(MappedFile *mf) {
    if (mf->data) munmap(mf->data, mf->size);
    memset(mf, 0, sizeof *mf);
}
