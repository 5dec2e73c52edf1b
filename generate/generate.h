/* generate — what main.c (options, batch mode) and repl.c (--interactive) share. */
#ifndef RLHF_GENERATE_H
#define RLHF_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "gen.h"
#include "model.h"
#include "tokenizer.h"

typedef struct {
    double temperature, top_p;
    int64_t top_k, max_new, k, batch, seed;
    char *system, *name, *split, *source, *risk;
    int64_t limit;
} GenerateCfg;

/* The sampler settings of a config as gen_run wants them. */
GenConfig generate_gen_config(const GenerateCfg *c);

/* The chat loop of --interactive on stdin/stdout; returns the exit code. */
int generate_repl(Model *m, const Tokenizer *tok, const GenerateCfg *c);

#endif
