/*
 * ckpt_tool — look into checkpoints, and move models between llama2.c and Hugging Face layouts.
 *
 *   ckpt_tool info DIR                         the config and what the directory holds
 *   ckpt_tool logits DIR ID...                 the model's outputs for one sequence, as JSON
 *   ckpt_tool import-llama2c MODEL.bin OUTDIR [--tokenizer TOKENIZER.bin]
 *   ckpt_tool export-llama2c DIR MODEL.bin [--version 0|1]
 *   ckpt_tool copy SRC DST                     rewrite a checkpoint (e.g. from transformers) our way
 *
 * `copy` loads SRC's model (and tokenizer.bin, if there is one) and saves them as DST: the same
 * numbers, with the tensors in flat-buffer order so that frozen loads can map DST instead of copying.
 * `logits` runs one forward pass over the ids (positions 0..n-1) and prints
 *   {"head": "lm", "vocab_size": V, "logits": [[V floats] per position]}   or
 *   {"head": "scalar", "values": [one float per position]}
 * with 9 significant digits (float32 round-trips), so other implementations can be compared with it
 * (tests/ref/check_interop.py does, against transformers). Frozen loading is used: the weights are
 * mapped, not copied, when the file allows it.
 * Exit status: 0 ok, 1 runtime failure, 2 usage or input error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "cli.h"
#include "util.h"

#define PROG "ckpt_tool"

static void usage(FILE *f) {
    fprintf(f, "usage: ckpt_tool COMMAND ARGS...\n\n"
               "commands:\n"
               "  info DIR                     print the checkpoint's config and which files it holds\n"
               "  logits DIR ID...             one forward pass over token ids ID... (positions 0..n-1);\n"
               "                               prints JSON: {\"head\", \"logits\": [[V]...]} or {\"head\", \"values\": [...]}\n"
               "  import-llama2c MODEL.bin OUTDIR [--tokenizer TOKENIZER.bin]\n"
               "                               a llama2.c model.bin (v0 or v1) -> checkpoint directory OUTDIR;\n"
               "                               the tokenizer (if given) must have the model's vocab_size tokens\n"
               "  export-llama2c DIR MODEL.bin [--version 0|1]\n"
               "                               a checkpoint -> llama2.c model.bin (default version 0, which\n"
               "                               llama2.c's run.c reads)\n"
               "  copy SRC DST                 rewrite checkpoint SRC (e.g. saved by transformers) as DST in\n"
               "                               flat-buffer order, so that frozen loads map it; keeps tokenizer.bin\n\n"
               "options:\n"
               "  --tokenizer FILE   import-llama2c: tokenizer.bin to put into OUTDIR\n"
               "  --version 0|1      export-llama2c: the model.bin version\n"
               "  --help             this text\n"
               "  --version          (alone, before any command) the program's version\n\n"
               "Checkpoint directories and the llama2.c formats are described in docs/formats.md.\n"
               "Exit status: 0 ok, 1 runtime failure, 2 usage or input error.\n");
}

static int usage_error(const char *what) { return cli_fail(PROG, ERR_INPUT, "%s (see --help)", what); }

static const char *file_state(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat sb;
    return stat(path, &sb) == 0 ? "yes" : "no";
}

static int cmd_info(const char *dir) {
    Model m;
    CkptMap map;
    Err rc = ckpt_load_model(&m, dir, &map);
    if (rc) return cli_fail(PROG, rc, "%s", err_msg());
    const ModelConfig *c = &m.cfg;
    printf("dir: %s\n", dir);
    printf("architecture: %s\n", c->head == HEAD_LM ? "LlamaForCausalLM" : "LlamaForSequenceClassification (one label)");
    printf("dim %d, hidden_dim %d, layers %d, heads %d, kv_heads %d, vocab %d, max_seq_len %d\n", c->dim, c->hidden_dim,
           c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->max_seq_len);
    printf("rms_norm_eps %g, rope_theta %g, tied embeddings %s\n", c->norm_eps, c->rope_theta,
           c->tie_embeddings ? "yes" : "no");
    printf("parameters: %zu (%zu tensors), %s\n", m.n_params, (size_t)m.n_tensors,
           map.mapped ? "memory-mapped (flat-buffer order)" : "copied (file not in flat-buffer order)");
    printf("tokenizer.bin: %s, optimizer.safetensors: %s, trainer_state.json: %s\n", file_state(dir, "tokenizer.bin"),
           file_state(dir, "optimizer.safetensors"), file_state(dir, "trainer_state.json"));
    model_free(&m);
    ckpt_map_free(&map);
    return 0;
}

static int cmd_logits(const char *dir, char **ids, int n) {
    if (n <= 0) return usage_error("logits needs at least one token id");
    Model m;
    CkptMap map;
    Err rc = ckpt_load_model(&m, dir, &map);
    if (rc) return cli_fail(PROG, rc, "%s", err_msg());
    int32_t *tokens = xmalloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        long v = strtol(ids[i], &end, 10);
        if (!*ids[i] || *end || errno || v < 0 || v >= m.cfg.vocab_size) {
            cli_fail(PROG, ERR_INPUT, "token id '%s' is not an integer in 0..%d", ids[i], m.cfg.vocab_size - 1);
            free(tokens);
            model_free(&m);
            ckpt_map_free(&map);
            return ERR_INPUT;
        }
        tokens[i] = (int32_t)v;
    }
    if (n > m.cfg.max_seq_len) {
        cli_fail(PROG, ERR_INPUT, "%d ids, more than max_position_embeddings %d", n, m.cfg.max_seq_len);
        free(tokens);
        model_free(&m);
        ckpt_map_free(&map);
        return ERR_INPUT;
    }
    model_alloc_infer(&m, 1, n);
    model_forward(&m, tokens, 1, n);
    if (m.cfg.head == HEAD_LM) {
        printf("{\"head\": \"lm\", \"vocab_size\": %d, \"logits\": [", m.cfg.vocab_size);
        for (int t = 0; t < n; t++) {
            printf("%s[", t ? ",\n" : "\n");
            for (int v = 0; v < m.cfg.vocab_size; v++)
                printf("%s%.9g", v ? ", " : "", m.acts.logits[(size_t)t * m.cfg.vocab_size + v]);
            printf("]");
        }
    } else {
        printf("{\"head\": \"scalar\", \"values\": [");
        for (int t = 0; t < n; t++) printf("%s%.9g", t ? ", " : "", m.acts.values[t]);
    }
    printf("]}\n");
    free(tokens);
    model_free(&m);
    ckpt_map_free(&map);
    return fflush(stdout) == 0 ? 0 : cli_fail(PROG, ERR_RUNTIME, "cannot write to stdout");
}

static int cmd_import(const char *bin, const char *outdir, const char *tokenizer) {
    Model m;
    int version;
    Err rc = ckpt_import_llama2c(&m, bin, &version);
    if (rc) return cli_fail(PROG, rc, "%s", err_msg());
    Tokenizer tok;
    CkptExtras x = {0};
    if (tokenizer) {
        if ((rc = tokenizer_load(&tok, tokenizer, m.cfg.vocab_size)) != ERR_OK) {
            model_free(&m);
            return cli_fail(PROG, rc, "%s", err_msg());
        }
        x.tokenizer = &tok;
    }
    rc = ckpt_save(outdir, &m, &x);
    if (tokenizer) tokenizer_free(&tok);
    if (!rc)
        printf("%s (llama2.c v%d, %zu parameters) -> %s%s\n", bin, version, m.n_params, outdir,
               tokenizer ? " with tokenizer.bin" : "");
    model_free(&m);
    return rc ? cli_fail(PROG, rc, "%s", err_msg()) : 0;
}

static int cmd_export(const char *dir, const char *bin, int version) {
    Model m;
    CkptMap map;
    Err rc = ckpt_load_model(&m, dir, &map);
    if (rc) return cli_fail(PROG, rc, "%s", err_msg());
    rc = ckpt_export_llama2c(&m, bin, version);
    if (!rc) printf("%s (%zu parameters) -> %s (llama2.c v%d)\n", dir, m.n_params, bin, version);
    model_free(&m);
    ckpt_map_free(&map);
    return rc ? cli_fail(PROG, rc, "%s", err_msg()) : 0;
}

static int cmd_copy(const char *src, const char *dst) {
    Model m;
    Err rc = ckpt_load_model(&m, src, NULL);
    if (rc) return cli_fail(PROG, rc, "%s", err_msg());
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.bin", src);
    struct stat sb;
    int has_tok = stat(path, &sb) == 0;
    Tokenizer tok;
    CkptExtras x = {.tokenizer = has_tok ? &tok : NULL};
    if (has_tok && (rc = ckpt_load_tokenizer(&tok, src, m.cfg.vocab_size)) != ERR_OK) {
        model_free(&m);
        return cli_fail(PROG, rc, "%s", err_msg());
    }
    rc = ckpt_save(dst, &m, &x);
    if (!rc) printf("%s -> %s (%zu parameters%s)\n", src, dst, m.n_params, has_tok ? ", tokenizer.bin" : "");
    if (has_tok) tokenizer_free(&tok);
    model_free(&m);
    return rc ? cli_fail(PROG, rc, "%s", err_msg()) : 0;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"tokenizer", required_argument, 0, 't'}, {"version", optional_argument, 0, 'V'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
    };
    const char *tokenizer = NULL, *version_arg = NULL;
    int version_flag = 0, c;
    opterr = 0;
    /* "--version 0" takes a value after export-llama2c and none alone: getopt's optional arguments
     * only bind with '=', so a following number is picked up by hand. */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 't': tokenizer = optarg; break;
        case 'V':
            version_flag = 1;
            if (optarg)
                version_arg = optarg;
            else if (optind < argc && argv[optind][0] >= '0' && argv[optind][0] <= '9')
                version_arg = argv[optind++]; /* checked below */
            break;
        case 'h': usage(stdout); return 0;
        case ':': return cli_fail(PROG, ERR_INPUT, "option '%s' needs a value (see --help)", argv[optind - 1]);
        default: return cli_fail(PROG, ERR_INPUT, "unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    int nargs = argc - optind;
    char **args = argv + optind;
    if (nargs == 0) {
        if (version_flag && !version_arg) {
            cli_print_version(PROG, RLHF_VERSION);
            return 0;
        }
        return usage_error("a command is needed");
    }
    const char *cmd = args[0];
    if (tokenizer && strcmp(cmd, "import-llama2c") != 0) return usage_error("--tokenizer goes with import-llama2c");
    if (version_flag && strcmp(cmd, "export-llama2c") != 0) return usage_error("--version N goes with export-llama2c");
    if (strcmp(cmd, "info") == 0) {
        if (nargs != 2) return usage_error("info takes one directory");
        return cmd_info(args[1]);
    }
    if (strcmp(cmd, "logits") == 0) {
        if (nargs < 2) return usage_error("logits takes a directory and token ids");
        return cmd_logits(args[1], args + 2, nargs - 2);
    }
    if (strcmp(cmd, "import-llama2c") == 0) {
        if (nargs != 3) return usage_error("import-llama2c takes MODEL.bin and OUTDIR");
        return cmd_import(args[1], args[2], tokenizer);
    }
    if (strcmp(cmd, "export-llama2c") == 0) {
        if (nargs != 3) return usage_error("export-llama2c takes DIR and MODEL.bin");
        int version = 0;
        if (version_flag) {
            if (!version_arg || (strcmp(version_arg, "0") != 0 && strcmp(version_arg, "1") != 0))
                return usage_error("--version must be 0 or 1");
            version = version_arg[0] - '0';
        }
        return cmd_export(args[1], args[2], version);
    }
    if (strcmp(cmd, "copy") == 0) {
        if (nargs != 3) return usage_error("copy takes SRC and DST");
        return cmd_copy(args[1], args[2]);
    }
    return cli_fail(PROG, ERR_INPUT, "unknown command '%s' (see --help)", cmd);
}
