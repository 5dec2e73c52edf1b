/*
 * generate --interactive — talk to a checkpoint through the Llama 2 chat template.
 *
 * Each line on stdin is a user turn (or a command); the answer goes to stdout on one line, and the
 * conversation so far is the prompt of the next turn, so the model sees the whole dialogue exactly
 * as SFT showed it dialogues: "<s>[INST] <<SYS>>..<</SYS>> u1 [/INST] a1 </s><s>[INST] u2 [/INST]".
 * When the dialogue outgrows the model's context, the oldest exchanges are dropped (and a note says
 * so on stderr); the system prompt stays, as GAtt would want it to.
 * Commands: /reset (forget the dialogue), /system TEXT (new system prompt, and reset; /system alone
 * removes it), /quit (or end of input), /help. Turn n samples from stream n of the seed, so a
 * scripted session gives the same answers every time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "generate.h"
#include "util.h"

static void help(void) {
    fprintf(stderr, "type a message and press enter; /reset forgets the dialogue, /system TEXT sets the system\n"
                    "prompt (and resets), /system alone removes it, /quit or end of input leaves\n");
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

/* The prompt for the dialogue, dropping the oldest exchanges until it fits. 1 when it fits, 0 when
 * the last message alone is too long, -1 when the template refuses it (message on err_msg). */
static int encode_fitting(const Model *m, const Tokenizer *tok, json_t *dialogue, const char *system,
                          TokenList *ids) {
    for (;;) {
        ids->n = 0;
        if (chat_encode_prompt(tok, dialogue, system && *system ? system : NULL, ids) != ERR_OK) return -1;
        if (ids->n <= (size_t)m->cfg.max_seq_len - 1) return 1;
        if (json_array_size(dialogue) < 3) return 0;
        json_array_remove(dialogue, 0); /* a user turn and its answer */
        json_array_remove(dialogue, 0);
        fprintf(stderr, "(the dialogue no longer fits the model's context of %d tokens: dropped the oldest exchange)\n",
                m->cfg.max_seq_len);
    }
}

int generate_repl(Model *m, const Tokenizer *tok, const GenerateCfg *c) {
    GenConfig g = generate_gen_config(c);
    g.batch = 1;
    char *system = xstrdup(c->system);
    json_t *dialogue = json_array();
    TokenList ids = {0};
    char *line = NULL;
    size_t cap = 0;
    int tty = isatty(STDIN_FILENO), code = 0;
    uint64_t turn = 0;
    fprintf(stderr, "generate: chat with a %d-layer, %d-dim model (%d tokens of context)%s%s\n", m->cfg.n_layers,
            m->cfg.dim, m->cfg.max_seq_len, *system ? "; system: " : "", system);
    if (tty) help();
    for (;;) {
        if (tty) fputs("> ", stderr);
        if (getline(&line, &cap, stdin) < 0) break;
        char *msg = trim(line);
        if (!*msg) continue;
        if (strcmp(msg, "/quit") == 0) break;
        if (strcmp(msg, "/help") == 0) {
            help();
            continue;
        }
        if (strcmp(msg, "/reset") == 0 || strncmp(msg, "/system", 7) == 0) {
            if (msg[1] == 's' && (msg[7] == ' ' || msg[7] == '\0')) {
                free(system);
                system = xstrdup(trim(msg + 7));
                fprintf(stderr, "(system prompt: %s)\n", *system ? system : "none");
            } else if (msg[1] == 's') {
                fprintf(stderr, "(unknown command %s; /help lists them)\n", msg);
                continue;
            }
            json_array_clear(dialogue);
            fprintf(stderr, "(new dialogue)\n");
            continue;
        }
        if (msg[0] == '/' && msg[1] != '/' && msg[1] != ' ') {
            fprintf(stderr, "(unknown command %s; /help lists them)\n", msg);
            continue;
        }
        json_t *user = json_pack("{s:s, s:s}", "role", "user", "content", msg);
        if (!user) {
            fprintf(stderr, "(that message is not valid UTF-8)\n");
            continue;
        }
        json_array_append_new(dialogue, user);
        int fits = encode_fitting(m, tok, dialogue, system, &ids);
        if (fits <= 0) {
            if (fits == 0) fprintf(stderr, "(that message alone does not fit the model's context of %d tokens)\n", m->cfg.max_seq_len);
            else fprintf(stderr, "(%s)\n", err_msg());
            json_array_remove(dialogue, json_array_size(dialogue) - 1);
            continue;
        }
        GenPrompt p = {ids.ids, (int)ids.n, turn++};
        GenSample s;
        Err rc = gen_run(m, &p, 1, 1, &g, &s, NULL);
        if (rc) {
            fprintf(stderr, "generate: %s\n", err_msg());
            code = rc;
            break;
        }
        char *answer = gen_answer_text(tok, &s);
        printf("%s\n", answer);
        fflush(stdout);
        json_array_append_new(dialogue, json_pack("{s:s, s:s}", "role", "assistant", "content", answer));
        free(answer);
        gen_samples_free(&s, 1);
    }
    free(line);
    token_list_free(&ids);
    json_decref(dialogue);
    free(system);
    return code;
}
