/*
 * tokenizer_train — learn a byte-level BPE vocabulary from text, written as llama2.c's tokenizer.bin.
 *
 *   tokenizer_train --vocab N --out FILE [FILE|-]...
 *
 * The inputs (files, or - for stdin; stdin when none is named) are read whole and concatenated as
 * one text; the vocabulary has exactly N tokens in the Llama 2 id layout (0 <unk>, 1 BOS, 2 EOS,
 * 3..258 bytes, then merges), so a checkpoint whose config says vocab_size N can use it. The file
 * is written atomically. Training is deterministic: the same input gives the same bytes.
 * On success one summary line goes to stdout. Exit status: 0 ok, 1 runtime failure (I/O),
 * 2 usage or input error (bad flag, unreadable input, a corpus too small for N tokens).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "tokenizer.h"
#include "util.h"

#define PROG "tokenizer_train"

static void usage(FILE *f) {
    fprintf(f, "usage: tokenizer_train --vocab N --out FILE [FILE|-]...\n\n"
               "Learns a byte-level BPE vocabulary of exactly N tokens from the text in the input files\n"
               "(- or nothing: stdin) and writes it in llama2.c's tokenizer.bin format (docs/formats.md).\n\n"
               "options:\n"
               "  --vocab N     vocabulary size, %d..%d (259 = 3 specials + 256 byte tokens, no merges)\n"
               "  --out FILE    the tokenizer.bin to write (atomically)\n"
               "  --help        this text\n"
               "  --version     the version\n\n"
               "Exit status: 0 ok, 1 runtime failure, 2 usage or input error.\n",
            TOKENIZER_FIRST_PIECE, 1 << 24);
}

/* Append the whole of f to text. */
static int read_all(FILE *f, const char *name, TextBuf *text) {
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) text_buf_append(text, buf, n);
    if (ferror(f)) return cli_fail(PROG, ERR_RUNTIME, "%s: read error: %s", name, strerror(errno));
    return ERR_OK;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"vocab", required_argument, 0, 'v'}, {"out", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    long vocab = 0;
    const char *out = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'v': {
            char *end;
            errno = 0;
            vocab = strtol(optarg, &end, 10);
            if (!*optarg || *end || errno || vocab < TOKENIZER_FIRST_PIECE || vocab > (1 << 24))
                return cli_fail(PROG, ERR_INPUT, "--vocab must be an integer in 259..16777216, not '%s' (see --help)", optarg);
            break;
        }
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': cli_print_version(PROG, RLHF_VERSION); return 0;
        case ':': return cli_fail(PROG, ERR_INPUT, "option '%s' needs a value (see --help)", argv[optind - 1]);
        default: return cli_fail(PROG, ERR_INPUT, "unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (vocab == 0) return cli_fail(PROG, ERR_INPUT, "--vocab N is required (see --help)");
    if (!out) return cli_fail(PROG, ERR_INPUT, "--out FILE is required (see --help)");

    TextBuf text = {0};
    int rc = ERR_OK;
    static char *dash[] = {"-"};
    char **inputs = optind < argc ? argv + optind : dash;
    int ninputs = optind < argc ? argc - optind : 1;
    for (int i = 0; rc == ERR_OK && i < ninputs; i++) {
        if (strcmp(inputs[i], "-") == 0) {
            rc = read_all(stdin, "stdin", &text);
            continue;
        }
        FILE *f = fopen(inputs[i], "rb");
        if (!f) {
            int e = errno;
            rc = cli_fail(PROG, e == ENOENT || e == EACCES || e == EISDIR ? ERR_INPUT : ERR_RUNTIME, "%s: %s", inputs[i],
                          strerror(e));
            break;
        }
        rc = read_all(f, inputs[i], &text);
        fclose(f);
    }
    if (rc != ERR_OK) {
        text_buf_free(&text);
        return rc;
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    Tokenizer t;
    TokenizerTrainStats st;
    rc = tokenizer_train(&t, text.data ? text.data : "", text.len, (int32_t)vocab, &st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    text_buf_free(&text);
    if (rc != ERR_OK) return cli_fail(PROG, rc, "%s", err_msg());
    rc = tokenizer_save(&t, out);
    tokenizer_free(&t);
    if (rc != ERR_OK) return cli_fail(PROG, rc, "%s", err_msg());
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("%s: %ld tokens from %lld bytes (%lld chunks, %lld distinct): %lld tokens, %.2f bytes/token, %.2f s\n",
           out, vocab, (long long)st.corpus_bytes, (long long)st.chunks, (long long)st.unique_chunks,
           (long long)st.corpus_tokens, st.corpus_tokens ? (double)st.corpus_bytes / (double)st.corpus_tokens : 0.0,
           secs);
    return 0;
}
