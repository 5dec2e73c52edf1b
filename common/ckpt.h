/*
 * ckpt — checkpoint directories in the Hugging Face layout, and llama2.c model.bin import/export.
 *
 * A checkpoint is a directory (docs/formats.md, "Checkpoints"):
 *     config.json            LlamaConfig keys; architectures ["LlamaForCausalLM"] (head lm) or
 *                            ["LlamaForSequenceClassification"] with num_labels 1 (head scalar)
 *     model.safetensors      every tensor of the model's table under its Hugging Face name, F32,
 *                            written in flat-buffer order so the file's data section IS the flat buffer
 *     tokenizer.bin          optional, llama2.c format (vocab_size tokens)
 *     optimizer.safetensors  optional: "m.<name>" and "v.<name>" for every tensor, AdamW's step t in
 *                            the metadata ("t", decimal)
 *     trainer_state.json     optional: any JSON object a trainer passes (step, RNG, data position...)
 *
 * Saving writes everything into "<dir>.tmp" (each file fsync'ed), then swaps it into place with one
 * rename. A crash leaves either the old directory, or no <dir> at all next to a complete "<dir>.tmp"
 * and "<dir>.old" (the window between two renames where the kernel cannot exchange directories) —
 * never a <dir> that loads as valid but holds a mix of two saves.
 *
 * Loading validates everything and names the file and what is wrong: a missing or mistyped config
 * key, a missing/extra tensor, a wrong dtype or shape, a truncated file, a tokenizer of another size.
 * A frozen model (reference, reward) is memory-mapped read-only: the model's params point into the
 * mapping when the data section is 4-byte aligned and every tensor sits at its flat-buffer offset
 * (true for files we write); otherwise (e.g. files from transformers' save_pretrained, which orders
 * tensors by name) the parameters are copied. Writing to mapped parameters faults: frozen means frozen.
 *
 * llama2.c model.bin: v0 (legacy: 7 int32 header, the sign of vocab_size says whether the classifier
 * is shared, RoPE tables inside) and v1 ("ak42" magic, 256-byte header). llama2.c rotates adjacent
 * pairs (2i, 2i+1) of each head where Hugging Face rotates (i, i + hd/2); the importer reorders each
 * head's rows of q_proj and k_proj to [even..., odd...] and the exporter undoes it, so the imported
 * model computes the same attention scores as llama2.c's run.c.
 */
#ifndef RLHF_CKPT_H
#define RLHF_CKPT_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "model.h"
#include "optim.h"
#include "safetensors.h"
#include "tokenizer.h"

/* What a save writes besides config.json and model.safetensors; any field may be NULL. */
typedef struct {
    const Tokenizer *tokenizer; /* -> tokenizer.bin (must have the model's vocab_size tokens) */
    const AdamW *opt;           /* -> optimizer.safetensors (opt->n == model n_params) */
    json_t *trainer_state;      /* -> trainer_state.json (a JSON object; not modified) */
} CkptExtras;

/* Keeps a frozen model's mapping alive. mapped: 1 when model.params points into it, 0 when copied. */
typedef struct {
    SafeTensors st;
    int mapped;
} CkptMap;

/* Writes the checkpoint directory `dir` as a whole (see above); extras may be NULL. Replaces an
 * existing checkpoint at dir. ERR_RUNTIME on I/O failure, leaving dir as it was. */
Err ckpt_save(const char *dir, const Model *m, const CkptExtras *extras);

/* Reads and checks dir/config.json. */
Err ckpt_read_config(const char *dir, ModelConfig *cfg);

/* Loads dir/config.json and dir/model.safetensors into *m. map NULL: a private writable copy (for
 * training). map non-NULL: frozen, mapped read-only when possible (see above); call ckpt_map_free(map)
 * after model_free(m). On failure *m and *map need no freeing. */
Err ckpt_load_model(Model *m, const char *dir, CkptMap *map);
void ckpt_map_free(CkptMap *map);

/* dir/tokenizer.bin, which must hold exactly vocab_size tokens. */
Err ckpt_load_tokenizer(Tokenizer *t, const char *dir, int32_t vocab_size);
/* dir/optimizer.safetensors into a fresh *opt sized for m (adamw_create is done here). */
Err ckpt_load_optimizer(AdamW *opt, const char *dir, const Model *m);
/* dir/trainer_state.json (a JSON object) into *state (new reference; json_decref it). */
Err ckpt_load_trainer_state(const char *dir, json_t **state);

/* llama2.c model.bin (v0 or v1, told apart by the "ak42" magic) -> a new model with owned params.
 * *version gets 0 or 1 (may be NULL). A v0 file's RoPE tables become the model's tables (they differ
 * from ours by at most one float32 ulp; keeping them makes export give back the same bytes). */
Err ckpt_import_llama2c(Model *m, const char *path, int *version);
/* Writes m as llama2.c model.bin version 0 or 1, atomically. ERR_INPUT for what llama2.c cannot
 * represent: a scalar head, rms_norm_eps != 1e-5 or rope_theta != 10000 (run.c hard-codes both). */
Err ckpt_export_llama2c(const Model *m, const char *path, int version);

#endif
