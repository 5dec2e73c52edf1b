/*
 * config — typed YAML configuration for every program.
 *
 * A program declares its configuration once, as a static table of keys (a schema) describing the
 * fields of its own config struct. The table drives everything: defaults, loading a YAML file,
 * `--set key=value` overrides, `--help` text and the resolved-config dump stored in the runs table.
 *
 *     typedef struct { int64_t dim; double lr; bool shuffle; char *optim; ConfigStrList sources; } SftCfg;
 *     static const ConfigKey SFT_SCHEMA[] = {
 *         {.key = "model.dim", .type = CONFIG_INT, .offset = offsetof(SftCfg, dim), .def = "64",
 *          .min = 8, .max = 4096, .help = "embedding width"},
 *         {.key = "train.lr", .type = CONFIG_FLOAT, .offset = offsetof(SftCfg, lr), .def = "3e-4",
 *          .min = 0, .max = 1, .help = "peak learning rate"},
 *         {.key = "train.shuffle", .type = CONFIG_BOOL, .offset = offsetof(SftCfg, shuffle), .def = "true",
 *          .help = "shuffle examples each epoch"},
 *         {.key = "train.optim", .type = CONFIG_ENUM, .offset = offsetof(SftCfg, optim), .def = "adamw",
 *          .choices = "adamw|sgd", .help = "optimizer"},
 *         {.key = "data.sources", .type = CONFIG_STRLIST, .offset = offsetof(SftCfg, sources),
 *          .def = "[human, rs]", .help = "sft_examples sources to train on"},
 *         {0}  // the table ends with a zeroed entry
 *     };
 *     SftCfg c;
 *     config_defaults(SFT_SCHEMA, &c);                          // every field gets its default
 *     if ((rc = config_load(SFT_SCHEMA, &c, "configs/sft.yaml")) ||  // file on top of defaults
 *         (rc = config_set(SFT_SCHEMA, &c, "train.lr=1e-3")))         // each --set on top of that
 *         { fprintf(stderr, "sft: %s\n", err_msg()); return rc; }
 *     char *text = config_dump_string(SFT_SCHEMA, &c);        // for the runs table
 *     config_free(SFT_SCHEMA, &c);
 *
 * The YAML file is a mapping; nested mappings and dotted keys name the same thing, so
 * `train: {lr: 0.001}` and `train.lr: 0.001` are equivalent. A list is a YAML sequence
 * (`sources: [human, rs]` or one `- item` per line). `include: base.yaml` (or a list of files) at the
 * top level loads those files first, relative to the including file's folder; the including file's
 * own values then override them. A key given twice in one file is an error; overriding an included
 * value is not.
 *
 * Storage of each type in the program's struct:
 *   CONFIG_INT      int64_t      range [min, max] when min < max
 *   CONFIG_FLOAT    double       range [min, max] when min < max; must be finite
 *   CONFIG_BOOL     bool         true/false, yes/no, on/off
 *   CONFIG_STRING   char *       owned by the struct; freed by config_free
 *   CONFIG_ENUM     char *       one of `choices` ("a|b|c"); owned like a string
 *   CONFIG_STRLIST  ConfigStrList
 *   CONFIG_NUMLIST  ConfigNumList  each element checked against [min, max] when min < max
 * Defaults are written as the YAML text a user would write; a default that does not parse is a
 * programming error (ASSERT), so every schema is checked the first time config_defaults runs.
 *
 * Errors (ERR_INPUT, message via err_msg) name the file and line, or "--set", and the key:
 *   configs/sft.yaml:12: unknown key 'train.lrr'
 *   configs/sft.yaml:7: train.lr: expected a number, got 'fast'
 *   --set: train.lr: 5 is out of range [0, 1]
 * A failed load may leave the struct partly updated; it is still safe to config_free.
 */
#ifndef RLHF_CONFIG_H
#define RLHF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

typedef enum {
    CONFIG_INT = 1, /* 0 is left for the zeroed end-of-table entry */
    CONFIG_FLOAT,
    CONFIG_BOOL,
    CONFIG_STRING,
    CONFIG_ENUM,
    CONFIG_STRLIST,
    CONFIG_NUMLIST,
} ConfigType;

typedef struct {
    size_t n;
    char **items;
} ConfigStrList;

typedef struct {
    size_t n;
    double *items;
} ConfigNumList;

typedef struct {
    const char *key;     /* dotted path, "train.lr" */
    ConfigType type;
    size_t offset;       /* offsetof(YourStruct, field) */
    const char *def;     /* default, as YAML text ("3e-4", "true", "[a, b]", "" for an empty string) */
    double min, max;     /* inclusive range for numbers; ignored unless min < max */
    const char *choices; /* CONFIG_ENUM only: "a|b|c" */
    const char *help;    /* one line */
} ConfigKey;

/* Set every field of cfg to its default. cfg must not hold values yet (it is overwritten, not freed). */
void config_defaults(const ConfigKey *schema, void *cfg);
/* Apply the YAML file at path (and its includes) on top of the current values. */
Err config_load(const ConfigKey *schema, void *cfg, const char *path);
/* Apply one "key.path=value" override. Lists take YAML flow syntax: "data.sources=[a, b]". */
Err config_set(const ConfigKey *schema, void *cfg, const char *assignment);
/* One line per key: name, type, default, range or choices, help. */
void config_print_help(const ConfigKey *schema, FILE *f);
/* The resolved configuration as YAML that config_load reads back to the same values. */
void config_dump(const ConfigKey *schema, const void *cfg, FILE *f);
/* config_dump into a malloc'd string; the caller frees it. */
char *config_dump_string(const ConfigKey *schema, const void *cfg);
/* Release the strings and lists held by cfg. */
void config_free(const ConfigKey *schema, void *cfg);

#endif
