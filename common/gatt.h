/*
 * gatt — Ghost Attention (Llama 2 §3.3) as pure functions: instruction lists, their terse forms,
 * attaching an instruction to every user turn, the training example, and adherence checks.
 *
 * The method. Take a multi-turn dialogue [u1, a1, ..., un, an] and an instruction inst that should
 * hold for the whole conversation ("Always answer as a pirate."). Attach inst to every user message,
 * sample the answers a'1..a'n with the latest model on that augmented dialogue (turn by turn, each
 * answer fed back as the context of the next), then train on
 *
 *     system = inst (full, or half of the time a terse form), [u1, a'1, ..., un, a'n]
 *
 * with the loss on the last answer a'n only: the instruction is visible in the first turn alone,
 * and every earlier token — the earlier answers included — carries no loss. The model thus learns
 * to produce an adherent answer many turns after the instruction was given, from answers that
 * adhered because the instruction was right there when they were sampled.
 *
 * Instruction lists come from configuration, not code. A *kind* is one line of four fields
 * separated by '|':
 *
 *     name | full form | terse form | check
 *     pirate   | Always answer as a pirate.              | Style: pirate. | word arr
 *     question | Always end your answer with a question. | End: question. | ends ?
 *     hobby    | Only speak about {hobby}.               | Topic: {hobby}. | names
 *
 * A form may hold one placeholder {slot}; both forms of a kind hold the same one (or none). A *slot*
 * is one line "slot: value value ..." (words separated by spaces): `hobby: music painting`. The check
 * says when a response adheres: `word W` — it contains the word W (a word is a run of ASCII letters or
 * digits, compared without case); `ends S` — its last non-blank characters are S; `names` — it
 * contains the slot's value as a word (the kind needs a placeholder). These are the toy world's rules
 * (docs/toyworld.md), written as data so that another world brings its own.
 *
 * Attaching: a template with {instruction} and {user} (e.g. "{instruction} {user}"), applied to the
 * content of each user turn. The default in configs/gatt_augment.yaml repeats the Llama 2 system
 * block, so every turn reads as the first turn of a dialogue with that system prompt — the form a
 * small SFT model has learned to obey.
 *
 * Errors: parsing a list entry returns ERR_INPUT naming the entry ("kinds[2]: ..."). Dialogues are
 * JSON arrays of {"role","content"} as in chat.h; a malformed one is ERR_INPUT naming the element.
 */
#ifndef RLHF_GATT_H
#define RLHF_GATT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "rng.h"

typedef enum { GATT_CHECK_WORD, GATT_CHECK_ENDS, GATT_CHECK_NAMES } GattCheck;

typedef struct {
    char *name;      /* "hobby" */
    char **values;   /* (n) words */
    size_t n;
} GattSlot;

typedef struct {
    char *name;          /* "pirate" */
    char *full, *terse;  /* templates, possibly with one {slot} */
    int slot;            /* index into GattList.slots, -1 = none */
    GattCheck check;
    char *arg;           /* WORD: the word; ENDS: the ending; NAMES: NULL */
} GattKind;

typedef struct {
    GattKind *kinds;
    size_t nkinds;
    GattSlot *slots;
    size_t nslots;
} GattList;

/* One concrete instruction: a kind with its slot value, and the text shown to the model. */
typedef struct {
    int kind;     /* index into GattList.kinds */
    char *value;  /* the slot value, NULL when the kind has no slot */
    char *text;   /* the rendered instruction (full or terse) */
    bool terse;
} GattInstr;

/* Parse slot lines and kind lines (see the top) into l. ERR_INPUT naming "slots[i]" or "kinds[i]";
 * l is then empty (nothing to free). At least one kind is required. */
Err gatt_list_parse(GattList *l, const char *const *kinds, size_t nkinds, const char *const *slots, size_t nslots);
void gatt_list_free(GattList *l);
/* Index of the kind called name, or -1. */
int gatt_kind_find(const GattList *l, const char *name);

/* The instruction text of kind with value (NULL when the kind has no slot), full or terse. */
char *gatt_render(const GattList *l, int kind, const char *value, bool terse);
/* Draw a kind uniformly, a value of its slot uniformly, and the terse form with probability
 * terse_prob, from r. The caller frees out with gatt_instr_free. */
void gatt_draw(const GattList *l, Rng *r, double terse_prob, GattInstr *out);
/* Recognise an instruction text (either form, surrounding whitespace ignored): fills out and returns
 * true, or returns false (out untouched). A slot value is any non-empty text without spaces. */
bool gatt_match(const GattList *l, const char *text, GattInstr *out);
void gatt_instr_free(GattInstr *in);

/* Does response follow the instruction (the kind's check)? */
bool gatt_adheres(const GattList *l, const GattInstr *in, const char *response);

/* The template with {instruction} and {user} replaced (each may appear any number of times). */
char *gatt_attach(const char *tmpl, const char *instruction, const char *user);
/* The user turns' contents of a dialogue (a JSON array alternating user/assistant and starting with
 * user; it may end with either). *users (n entries) point into dialogue. ERR_INPUT naming the element
 * for anything else, including an empty dialogue and an empty user turn. */
Err gatt_user_turns(const json_t *dialogue, const char ***users, size_t *n);
/* The generation prompt's dialogue for turn t (0-based): users[0..t] each attached with tmpl
 * (instruction attached only when tmpl != NULL) and answers[0..t-1] between them; ends with a user
 * turn. A new reference. */
json_t *gatt_turn_dialogue(const char *const *users, const char *const *answers, size_t t, const char *tmpl,
                           const char *instruction);
/* The GAtt training example as a JSONL sft_example record: the plain user turns with answers[0..n-1],
 * "system": in->text, "loss_turns": [n-1] (the last answer only), "source": "gatt", "iteration",
 * "split": "train", and tags {category: system, instruction: kind name, value?, terse}. */
json_t *gatt_example(const GattList *l, const char *const *users, const char *const *answers, size_t n,
                     const GattInstr *in, int64_t iteration);

#endif
