/*
 * safetensors — the Hugging Face tensor file format, read (mapped) and written (atomically).
 *
 * Layout: 8 bytes little-endian u64 N, then N bytes of a JSON object, then the data section.
 * The JSON maps each tensor name to {"dtype": "F32"|"I32"|..., "shape": [...], "data_offsets":
 * [begin, end]} (byte offsets into the data section) and may hold "__metadata__": {str: str}.
 * We read F32 and I32 and reject other dtypes by name. The writer pads the header with spaces to a
 * multiple of 8 bytes so the data section, and every tensor in it, is 8-byte aligned in a mapping.
 * Every inconsistency (header past the end of the file, offsets out of the data section, a size
 * that disagrees with the shape, overlapping tensors, a non-string metadata value) is an ERR_INPUT
 * that names the file and the tensor.
 */
#ifndef RLHF_SAFETENSORS_H
#define RLHF_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "fileio.h"

typedef enum { ST_F32 = 0, ST_I32 = 1 } StDtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t begin, end; /* byte offsets in the data section */
} StTensor;

typedef struct {
    char *path;
    MappedFile file;
    const uint8_t *data; /* the data section */
    size_t data_size;
    StTensor *tensors;
    int n_tensors;
    char **meta_keys, **meta_values;
    int n_meta;
} SafeTensors;

Err safetensors_open(SafeTensors *st, const char *path);
void safetensors_close(SafeTensors *st);
const StTensor *safetensors_find(const SafeTensors *st, const char *name);
/* Pointer to the tensor's bytes inside the mapping (8-byte aligned only in files we wrote). */
const void *safetensors_data(const SafeTensors *st, const StTensor *t);
/* Copies tensor `name` into out after checking dtype and shape (ndim dims from shape). ERR_INPUT
 * names the file and tensor when it is missing or differs. */
Err safetensors_read(const SafeTensors *st, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                     void *out);
/* Metadata value for key, or NULL. */
const char *safetensors_meta(const SafeTensors *st, const char *key);

typedef struct {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StEntry;

/* Writes the tensors (in the given order) and metadata pairs (meta[2i] key, meta[2i+1] value) atomically. */
Err safetensors_write(const char *path, const StEntry *entries, int n, const char *const *meta, int n_meta);

#endif
