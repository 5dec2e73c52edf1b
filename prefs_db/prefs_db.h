/*
 * prefs_db — the parts of the program, shared between its files.
 *
 * main.c parses the command line and dispatches; import.c turns JSONL lines (our interchange
 * records, Anthropic hh-rlhf, PKU-SafeRLHF rows) into store rows; export.c writes store rows as
 * interchange records and computes stats and splits; annotate.c asks a person or a command.
 * Every subcommand returns an Err, which main turns into the exit code (0, 1 runtime, 2 input).
 */
#ifndef RLHF_PREFS_DB_H
#define RLHF_PREFS_DB_H

#include <jansson.h>
#include <stdint.h>

/* Paths relative to this folder, so the program builds whether or not -Icommon is on the line. */
#include "err.h"
#include "jsonl.h"
#include "store.h"

/* Everything the command line can say; each subcommand reads the fields it documents. */
typedef struct {
    const char *db_path;
    const char *format;    /* import: jsonl | hh-rlhf | pku */
    const char *dimension; /* import (when the format does not say), export filter, annotate */
    const char *split;     /* import default, export filter, annotate filter */
    const char *annotator; /* import/annotate: who judged, when the input does not say */
    const char *model;     /* import: model of responses the input does not name; export filter */
    const char *source;    /* import: source of new prompts; export filter */
    const char *table;     /* export */
    const char *rater;     /* annotate --rater CMD */
    int rating;            /* import: rating when the format has none */
    int64_t iteration;     /* import default; export/annotate filter (-1 = any) */
    int64_t limit;         /* export/annotate */
    int skip_bad;          /* import */
    int force;             /* split: reassign prompts that already have a split */
    double test_fraction;  /* split */
    uint64_t seed;         /* split */
} Options;

/* Why an hh-rlhf or PKU row gave no comparison, though it was well-formed JSON. */
typedef enum {
    SKIP_PREFIX_DIFFERS,
    SKIP_NOT_A_DIALOGUE, /* no final assistant answer, or turns that do not alternate */
    SKIP_IDENTICAL,
    SKIP_N
} SkipReason;

typedef struct {
    Store *db;
    const Options *opt;
    const char *default_type; /* record type assumed when a line has no "type" (NULL: required) */
    /* what one import did */
    int64_t lines, prompts_new, responses, comparisons, sft_examples, bad_lines;
    int64_t merged; /* hh-rlhf rows imported after joining two same-role turns */
    int64_t skipped[SKIP_N];
} Importer;

/* Import every line of r into im->db in one transaction: all of it or, on the first bad line
 * (unless opt->skip_bad), none of it. */
Err import_stream(Importer *im, JsonlReader *r);
const char *import_skip_reason(SkipReason why);

Err cmd_import(const Options *opt, const char *path);
Err cmd_export(const Options *opt);
Err cmd_stats(const Options *opt);
Err cmd_split(const Options *opt);
Err cmd_annotate(const Options *opt);

/* The Prompt object of the interchange format for a stored prompt. */
json_t *prompt_to_json(const StorePrompt *p);

#endif
