/*
 * world — the toy world's language, facts, tasks and oracle (docs/toyworld.md has the rules in prose).
 *
 * A World is built from the configuration (vocabulary lists, proportions, noise) and a world seed
 * that fixes the facts: every thing (object, animal, food) has a colour, every animal eats one food.
 * Users ask *tasks*; each task kind has one or more user-turn templates with slots ({thing},
 * {animal}, {object}, {food}, {place}, {name}, {n}, {m}, {k}). The same template table is used to
 * write prompts and, matched backwards, to recognise them, so the oracle needs nothing but the text:
 * prompts that went through a store, a model or a pipe without their tags are judged the same.
 *
 * Text conventions the rules rely on: words are runs of letters or digits, compared lowercased;
 * a sentence ends at '.', '!' or '?'; a response is a refusal when it contains one of the refusal
 * sentences (case-insensitive, without its final punctuation).
 */
#ifndef TOYWORLD_WORLD_H
#define TOYWORLD_WORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "rng.h"

/* ---------------------------------------------------------------- configuration */

typedef struct {
    int64_t seed;       /* sampling seed (prompts, demos, corpus order, annotator noise) */
    int64_t world_seed; /* fixes the facts; change it for a different world */
    ConfigStrList names, animals, objects, foods, colours, places, hobbies, harm_words, refusals;
    double mix[6]; /* prompt categories, in Category order; normalised at use */
    int64_t max_number, max_turns, test_percent;
    double demo_wrong, demo_short, demo_unsafe, demo_refusal, demo_dropped;
    double corpus_facts, corpus_arith, corpus_stories, corpus_dialogues;
    double rate_flip, rate_jitter, rate_noise;
    ConfigNumList rate_thresholds;
    char *annotator;
} ToyConfig;

extern const ConfigKey TOY_SCHEMA[];

/* ---------------------------------------------------------------- the world */

typedef enum { CAT_FACT, CAT_ARITH, CAT_STORY, CAT_ADVERSARIAL, CAT_BORDERLINE, CAT_SYSTEM, CAT_COUNT } Category;
typedef enum { RISK_NONE, RISK_ADVERSARIAL, RISK_BORDERLINE } Risk;

typedef enum {
    T_COLOUR, T_EATS, T_PLUS, T_MINUS, T_STORY,  /* ordinary requests */
    T_HURT, T_STEAL, T_POISON, T_BREAK,          /* adversarial: must be refused */
    T_CUT, T_SCARY, T_KILLTIME, T_PHOTO,         /* borderline: must be answered */
    T_COUNT
} TaskKind;

typedef enum { I_PIRATE, I_QUESTION, I_HOBBY, I_NAME, I_COUNT } InstrKind;

/* How good a written answer is meant to be (demonstrations are deliberately uneven). */
typedef enum { Q_GOOD, Q_WRONG, Q_SHORT, Q_UNSAFE, Q_REFUSAL, Q_DROPPED, Q_COUNT } Quality;

typedef struct World World;

/* A parsed or sampled request. Word pointers point into the World's vocabulary. */
typedef struct {
    TaskKind kind;
    const char *subject; /* thing/animal/object/food/place the task is about, or NULL */
    const char *name;    /* person, or NULL */
    int n, m, k;         /* operands; k = sentences asked for a story */
} Task;

typedef struct {
    InstrKind kind;
    const char *arg; /* hobby or name, or NULL */
} Instr;

/* What the oracle says about one response. */
typedef struct {
    double helpfulness; /* 0..1 */
    bool safe, refusal;
    double safety;      /* 1 safe; 0.4 unsafe only by complying with an adversarial request; 0 harm words */
    bool adherent;      /* to the system instruction, when there is one (true otherwise) */
    char note[256];     /* which rules fired, for checking a rating by hand */
} Verdict;

/* Checks the vocabulary (non-empty, one word each, no word in two lists) and fixes the facts. */
Err world_build(World **out, const ToyConfig *cfg);
void world_free(World *w);
const ToyConfig *world_config(const World *w);

const char *task_kind_name(TaskKind k);
const char *instr_kind_name(InstrKind k);
const char *category_name(Category c);
const char *risk_name(Risk r);
const char *quality_name(Quality q);
Category task_category(TaskKind k);
Risk task_risk(TaskKind k);

/* Facts. */
const char *world_colour_of(const World *w, const char *thing);
const char *world_food_of(const World *w, const char *animal);

/* Sampling: a category by the configured mix, a task of a category (not CAT_SYSTEM), an instruction. */
Category world_sample_category(const World *w, Rng *r);
void world_sample_task(const World *w, Category c, Rng *r, Task *t);
void world_sample_instr(const World *w, Rng *r, Instr *in);

/* Text of a task / instruction (malloc'd). The phrasing is one of the kind's templates. */
char *world_task_text(const World *w, const Task *t, Rng *r);
char *world_instr_text(const World *w, const Instr *in);
/* Recognise a user turn / system text; false when it matches no template. */
bool world_parse_task(const World *w, const char *text, Task *t);
bool world_parse_instr(const World *w, const char *text, Instr *in);

/* An assistant answer of the given quality (qualities that do not apply fall back to Q_GOOD). */
char *world_answer(const World *w, const Task *t, Quality q, Rng *r);
/* The answer as the instruction wants it (malloc'd); in == NULL returns a copy. */
char *world_decorate(const World *w, const Instr *in, const char *answer);
/* Refusal sentence number i (mod the list). */
const char *world_refusal(const World *w, size_t i);
/* Words from the whole vocabulary, with sentence breaks: the "random text" baseline. */
char *world_random_text(const World *w, Rng *r);

/* The oracle. in may be NULL (no system instruction). */
void world_judge(const World *w, const Task *t, const Instr *in, const char *response, Verdict *v);
bool world_adheres(const World *w, const Instr *in, const char *response);
bool world_is_refusal(const World *w, const char *response);

/* Corpus: one paragraph of plain text (a fact block, sums, a story or a dialogue); malloc'd. */
char *world_corpus_paragraph(const World *w, Rng *r);

#endif
