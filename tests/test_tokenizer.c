/*
 * tokenizer: Llama 2 ids against SentencePiece, exact round trips on arbitrary bytes, the encoder
 * against a plain llama2.c-style reimplementation, every malformed tokenizer.bin, and the trainer.
 *
 * tests/fixtures/tokenizer/llama2_sentencepiece.jsonl holds reference ids made by Debian's
 * python3-sentencepiece with Meta's tokenizer.model (tests/ref/gen_token_table.py).
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rng.h"
#include "testutil.h"
#include "tokenizer.h"
#include "util.h"

#define LLAMA_VOCAB 32000

static char tmpdir[64];

static void path_in_data(char *out, size_t n, const char *rel) {
    snprintf(out, n, "%s/%s", testutil_data_dir(), rel);
}

static void load_llama(Tokenizer *t) {
    char path[512];
    path_in_data(path, sizeof path, "llama2c/tokenizer.bin");
    Err rc = tokenizer_load(t, path, LLAMA_VOCAB);
    ck_assert_msg(rc == ERR_OK, "%s", err_msg());
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = xmalloc((size_t)n + 1);
    ck_assert_uint_eq(fread(d, 1, (size_t)n, f), (size_t)n);
    d[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return d;
}

static void write_file(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    ck_assert_uint_eq(fwrite(d, 1, n, f), n);
    fclose(f);
}

static void assert_ids(const TokenList *got, const int32_t *want, size_t n, const char *what) {
    bool same = got->n == n && (n == 0 || memcmp(got->ids, want, n * sizeof *want) == 0);
    if (!same) {
        char buf[2048];
        size_t o = (size_t)snprintf(buf, sizeof buf, "%s: got", what);
        for (size_t i = 0; i < got->n && o < sizeof buf - 16; i++) o += (size_t)snprintf(buf + o, sizeof buf - o, " %d", got->ids[i]);
        o += (size_t)snprintf(buf + o, sizeof buf - o, " want");
        for (size_t i = 0; i < n && o < sizeof buf - 16; i++) o += (size_t)snprintf(buf + o, sizeof buf - o, " %d", want[i]);
        ck_abort_msg("%s", buf);
    }
}

static void assert_roundtrip(const Tokenizer *t, const char *s, size_t n) {
    TokenList ids = {0};
    tokenizer_encode(t, s, n, false, false, &ids);
    TextBuf back = {0};
    tokenizer_decode(t, ids.ids, ids.n, &back);
    ck_assert_msg(back.len == n && memcmp(back.data, s, n) == 0, "round trip of %zu bytes gave %zu bytes", n, back.len);
    for (size_t i = 0; i < ids.n; i++) ck_assert(ids.ids[i] >= TOKENIZER_BYTE0 && ids.ids[i] < t->vocab_size);
    token_list_free(&ids);
    text_buf_free(&back);
}

/* ------------------------------------------------------------------------------------------------ */
/* Llama 2 */

START_TEST(test_llama2_matches_sentencepiece) {
    Tokenizer t;
    load_llama(&t);
    ck_assert_int_eq(t.vocab_size, LLAMA_VOCAB);
    ck_assert_int_eq(t.max_piece_len, 27);
    FILE *f = fopen("tests/fixtures/tokenizer/llama2_sentencepiece.jsonl", "r");
    ck_assert_msg(f != NULL, "run from the repository root");
    char line[8192];
    int encoded = 0, decoded = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t jerr;
        json_t *rec = json_loads(line, JSON_ALLOW_NUL, &jerr);
        ck_assert_msg(rec != NULL, "fixture: %s", jerr.text);
        json_t *text = json_object_get(rec, "text"), *ids = json_object_get(rec, "ids");
        json_t *dec = json_object_get(rec, "decode");
        json_t *arr = ids ? ids : dec;
        size_t n = json_array_size(arr);
        int32_t *want = xmalloc((n + 1) * sizeof *want);
        for (size_t i = 0; i < n; i++) want[i] = (int32_t)json_integer_value(json_array_get(arr, i));
        const char *s = json_string_value(text);
        size_t slen = json_string_length(text);
        TokenList got = {0};
        TextBuf back = {0};
        if (ids) {
            tokenizer_encode(&t, s, slen, false, false, &got);
            assert_ids(&got, want, n, s);
            /* SentencePiece's decode gives the text back, so must ours, exactly and as UTF-8. */
            json_t *alt = json_object_get(rec, "decoded");
            const char *ws = alt ? json_string_value(alt) : s;
            size_t wl = alt ? json_string_length(alt) : slen;
            tokenizer_decode_utf8(&t, want, n, &back);
            ck_assert_msg(back.len == wl && memcmp(back.data, ws, wl) == 0, "decode of \"%s\" gave \"%s\"", s, back.data);
            encoded++;
        } else {
            tokenizer_decode_utf8(&t, want, n, &back);
            ck_assert_msg(back.len == slen && memcmp(back.data, s, slen) == 0, "decode gave \"%s\", want \"%s\"", back.data, s);
            decoded++;
        }
        token_list_free(&got);
        text_buf_free(&back);
        free(want);
        json_decref(rec);
    }
    fclose(f);
    ck_assert_int_ge(encoded, 20);
    ck_assert_int_ge(decoded, 5);
    tokenizer_free(&t);
}
END_TEST

START_TEST(test_llama2_bos_eos_and_empty) {
    Tokenizer t;
    load_llama(&t);
    TokenList ids = {0};
    tokenizer_encode(&t, "", 0, false, false, &ids);
    ck_assert_uint_eq(ids.n, 0);
    tokenizer_encode(&t, "", 0, true, true, &ids);
    assert_ids(&ids, (int32_t[]){1, 2}, 2, "empty with bos/eos");
    ids.n = 0;
    tokenizer_encode(&t, "Hello world", 11, true, true, &ids);
    assert_ids(&ids, (int32_t[]){1, 15043, 3186, 2}, 4, "hello with bos/eos");
    /* The same string with a NUL inside: NUL is the byte token <0x00>. */
    ids.n = 0;
    tokenizer_encode(&t, "Hello\0world", 11, false, false, &ids);
    assert_ids(&ids, (int32_t[]){15043, 3, 11526}, 3, "hello NUL world");
    /* U+2581 is not a space for us (SentencePiece would read it as one): its three bytes. */
    ids.n = 0;
    tokenizer_encode(&t, "a\xE2\x96\x81" "b", 5, false, false, &ids);
    assert_ids(&ids, (int32_t[]){263, 0xE2 + 3, 0x96 + 3, 0x81 + 3, 29890}, 5, "a U+2581 b");
    token_list_free(&ids);
    tokenizer_free(&t);
}
END_TEST

START_TEST(test_llama2_decode_piece_streams) {
    Tokenizer t;
    load_llama(&t);
    const char *s = "Hello world, 你好 😀!";
    TokenList ids = {0};
    tokenizer_encode(&t, s, strlen(s), true, true, &ids);
    TextBuf streamed = {0};
    int32_t prev = -1;
    for (size_t i = 0; i < ids.n; i++) {
        size_t n;
        const char *p = tokenizer_decode_piece(&t, prev, ids.ids[i], &n);
        text_buf_append(&streamed, p, n);
        prev = ids.ids[i];
    }
    ck_assert_str_eq(streamed.data, s);
    size_t n;
    const char *p = tokenizer_piece(&t, 15043, &n);
    ck_assert_uint_eq(n, 6);
    ck_assert(memcmp(p, " Hello", 6) == 0);
    p = tokenizer_piece(&t, 13, &n); /* <0x0A> */
    ck_assert(n == 1 && p[0] == '\n');
    ck_assert_int_eq(tokenizer_find(&t, " Hello", 6), 15043);
    ck_assert_int_eq(tokenizer_find(&t, "<0x0A>", 6), -1); /* byte tokens are not pieces */
    ck_assert_int_eq(tokenizer_find(&t, "\n<s>\n", 5), -1);
    token_list_free(&ids);
    text_buf_free(&streamed);
    tokenizer_free(&t);
}
END_TEST

/* Random text with everything that tends to break tokenizers: invalid UTF-8, truncated
 * characters, NUL, emoji, U+2581, runs of spaces and newlines. */
static size_t random_text(Rng *r, char *out, size_t cap) {
    static const char *parts[] = {"the", " cat", "  ", "\n", "\n\n", " é", "你好", "😀", "👍🏽", "\xE2\x96\x81",
                                  "\xF0\x9F\x98", "\xC3", "\xFF", "\x80\x80", "", " ", "a", "ing", "\t", "\r\n"};
    size_t n = 0, want = 1 + rng_below(r, (uint32_t)(cap - 8));
    while (n < want) {
        uint32_t k = rng_below(r, 24);
        if (k < 20) {
            size_t l = strlen(parts[k]);
            if (k == 14) l = 1; /* the empty string part stands for NUL */
            if (n + l > cap) break;
            memcpy(out + n, parts[k], l);
            n += l;
        } else {
            out[n++] = (char)rng_below(r, 256);
        }
    }
    return n;
}

START_TEST(test_llama2_roundtrip_arbitrary_bytes) {
    Tokenizer t;
    load_llama(&t);
    Rng r;
    rng_seed(&r, 11);
    char buf[512];
    for (int it = 0; it < 300; it++) assert_roundtrip(&t, buf, random_text(&r, buf, sizeof buf));
    /* A few by hand: leading spaces survive, a lone space, only newlines. */
    assert_roundtrip(&t, "  x", 3);
    assert_roundtrip(&t, " ", 1);
    assert_roundtrip(&t, "\n\n", 2);
    assert_roundtrip(&t, "\0", 1);
    TextBuf out = {0};
    int32_t bad[] = {0xE4 + 3, 263};
    tokenizer_decode_utf8(&t, bad, 2, &out);
    ck_assert_str_eq(out.data, "\xEF\xBF\xBD" " a"); /* 263 is " a": not first, keeps its space */
    text_buf_free(&out);
    tokenizer_free(&t);
}
END_TEST

/* ------------------------------------------------------------------------------------------------ */
/* The encoder against a plain reimplementation of llama2.c's loop (no heap, no cutting): start from
 * characters (pieces or bytes), repeatedly merge the best-scoring allowed pair, leftmost on ties. */

typedef struct {
    int32_t id, start, len;
    bool cstart, cend; /* begins / ends a UTF-8 character */
} RefSym;

static int ref_char_len(const unsigned char *s, size_t n) {
    /* Deliberately written differently from the library: decode and range-check the code point. */
    unsigned c = s[0];
    int need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (need == 0 || (size_t)need > n) return 0;
    if (need == 1) return 1;
    unsigned cp = c & (0xFFu >> (need + 1));
    for (int k = 1; k < need; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[need] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return need;
}

static void ref_encode(const Tokenizer *t, const char *text, size_t len, TokenList *out) {
    if (len == 0) return;
    size_t n = len + 1;
    char *b = xmalloc(n);
    b[0] = ' ';
    memcpy(b + 1, text, len);
    RefSym *s = xmalloc(n * sizeof *s);
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        int c = ref_char_len((const unsigned char *)b + i, n - i);
        int32_t id = c ? tokenizer_find(t, b + i, (size_t)c) : -1;
        if (id >= 0) {
            s[m++] = (RefSym){id, (int32_t)i, c, true, true};
        } else {
            int k = c ? c : 1;
            for (int j = 0; j < k; j++)
                s[m++] = (RefSym){3 + (unsigned char)b[i + j], (int32_t)(i + j), 1, j == 0, j == k - 1};
        }
        i += c ? (size_t)c : 1;
    }
    for (;;) {
        float best = -INFINITY;
        size_t at = SIZE_MAX;
        int32_t best_id = -1;
        for (size_t i = 0; i + 1 < m; i++) {
            bool ok = !s[i].cend || (s[i].cstart && s[i + 1].cend);
            if (!ok) continue;
            int32_t id = tokenizer_find(t, b + s[i].start, (size_t)(s[i].len + s[i + 1].len));
            if (id >= 0 && (at == SIZE_MAX || t->score[id] > best)) {
                best = t->score[id];
                at = i;
                best_id = id;
            }
        }
        if (at == SIZE_MAX) break;
        s[at].id = best_id;
        s[at].len += s[at + 1].len;
        s[at].cend = s[at + 1].cend;
        memmove(s + at + 1, s + at + 2, (m - at - 2) * sizeof *s);
        m--;
    }
    for (size_t i = 0; i < m; i++) token_list_push(out, s[i].id);
    free(s);
    free(b);
}

static void assert_matches_reference(const Tokenizer *t, uint64_t seed, int iters) {
    Rng r;
    rng_seed(&r, seed);
    char buf[400];
    for (int it = 0; it < iters; it++) {
        size_t n = random_text(&r, buf, sizeof buf);
        TokenList a = {0}, b = {0};
        tokenizer_encode(t, buf, n, false, false, &a);
        ref_encode(t, buf, n, &b);
        assert_ids(&a, b.ids, b.n, "heap encoder vs llama2.c loop");
        token_list_free(&a);
        token_list_free(&b);
    }
}

START_TEST(test_llama2_matches_plain_loop) {
    Tokenizer t;
    load_llama(&t);
    assert_matches_reference(&t, 5, 150);
    char path[512];
    size_t n;
    path_in_data(path, sizeof path, "tinystories/tinystories_sample.txt");
    char *story = read_file(path, &n);
    TokenList a = {0}, b = {0};
    tokenizer_encode(&t, story, n, false, false, &a);
    ref_encode(&t, story, n, &b);
    assert_ids(&a, b.ids, b.n, "tinystories sample");
    token_list_free(&a);
    token_list_free(&b);
    free(story);
    tokenizer_free(&t);
}
END_TEST

/* Encoding is read-only on the Tokenizer: many threads at once give what one thread gives. */
START_TEST(test_llama2_encode_on_many_threads) {
    Tokenizer t;
    load_llama(&t);
    enum { N = 64 };
    static char texts[N][300];
    static size_t lens[N];
    static TokenList serial[N], parallel[N];
    Rng r;
    rng_seed(&r, 23);
    for (int i = 0; i < N; i++) {
        lens[i] = random_text(&r, texts[i], sizeof texts[i]);
        memset(&serial[i], 0, sizeof serial[i]);
        memset(&parallel[i], 0, sizeof parallel[i]);
        tokenizer_encode(&t, texts[i], lens[i], true, false, &serial[i]);
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(2)
    for (int i = 0; i < N; i++) tokenizer_encode(&t, texts[i], lens[i], true, false, &parallel[i]);
    for (int i = 0; i < N; i++) {
        assert_ids(&parallel[i], serial[i].ids, serial[i].n, "threaded encode");
        token_list_free(&serial[i]);
        token_list_free(&parallel[i]);
    }
    tokenizer_free(&t);
}
END_TEST

/* ------------------------------------------------------------------------------------------------ */
/* Malformed files */

typedef struct {
    uint8_t *d;
    size_t n, cap;
} Bytes;

static void bytes_put(Bytes *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->d = xrealloc(b->d, b->cap);
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void bytes_u32(Bytes *b, uint32_t v) { bytes_put(b, &v, 4); } /* the test machine is little-endian */

static void bytes_token(Bytes *b, float score, const char *s, size_t n) {
    bytes_put(b, &score, 4);
    bytes_u32(b, (uint32_t)n);
    bytes_put(b, s, n);
}

/* A valid 262-token file: the base layout and three pieces. */
static Bytes small_file(void) {
    Bytes b = {0};
    bytes_u32(&b, 6);
    bytes_token(&b, 0, "<unk>", 5);
    bytes_token(&b, 0, "\n<s>\n", 5);
    bytes_token(&b, 0, "\n</s>\n", 6);
    for (int i = 0; i < 256; i++) {
        char p[8];
        snprintf(p, sizeof p, "<0x%02X>", i);
        bytes_token(&b, 0, p, 6);
    }
    bytes_token(&b, -1, " t", 2);
    bytes_token(&b, -2, "he", 2);
    bytes_token(&b, -3, " the", 4);
    return b;
}

static void expect_load_error(const Bytes *b, int32_t vocab, const char *needle) {
    char path[128];
    snprintf(path, sizeof path, "%s/bad.bin", tmpdir);
    write_file(path, b->d, b->n);
    Tokenizer t;
    Err rc = tokenizer_load(&t, path, vocab);
    ck_assert_msg(rc == ERR_INPUT, "expected an input error containing '%s'", needle);
    ck_assert_msg(strstr(err_msg(), needle) != NULL, "message '%s' lacks '%s'", err_msg(), needle);
    ck_assert_msg(strstr(err_msg(), path) != NULL, "message '%s' does not name the file", err_msg());
    ck_assert_int_eq(t.vocab_size, 0);
    tokenizer_free(&t);
}

START_TEST(test_load_rejects_malformed_files) {
    Bytes good = small_file();
    char path[128];
    snprintf(path, sizeof path, "%s/good.bin", tmpdir);
    write_file(path, good.d, good.n);
    Tokenizer t;
    ck_assert_msg(tokenizer_load(&t, path, 262) == ERR_OK, "%s", err_msg());
    TokenList ids = {0};
    tokenizer_encode(&t, "the", 3, false, false, &ids);
    assert_ids(&ids, (int32_t[]){261}, 1, "small vocabulary");
    token_list_free(&ids);
    tokenizer_free(&t);

    expect_load_error(&good, 263, "holds 262 tokens, expected vocab_size 263");
    expect_load_error(&good, 261, "holds 262 tokens, expected vocab_size 261");
    expect_load_error(&good, 100, "vocab_size 100 is below 259");
    Bytes cut = good;
    cut.n = good.n - 2;
    expect_load_error(&cut, 262, "truncated in token 261");
    cut.n = good.n - 8 - 4 + 3;
    expect_load_error(&cut, 262, "truncated in the header of token 261");
    cut.n = 2;
    expect_load_error(&cut, 262, "too short");
    Bytes extra = small_file();
    bytes_put(&extra, "xyz", 3);
    expect_load_error(&extra, 262, "3 stray bytes after token 261");

    Bytes bad = small_file();
    uint32_t huge = 1u << 30;
    memcpy(bad.d, &huge, 4);
    expect_load_error(&bad, 262, "max_token_length 1073741824 is implausible");
    free(bad.d);

    bad = small_file();
    memcpy(bad.d + 4 + 8 + 5 + 8 + 5 + 8 + 6 + 8 + 3, "7", 1); /* <0x00> -> <0x70> */
    expect_load_error(&bad, 262, "token 3 is \"<0x70>\", expected the byte token <0x00>");
    free(bad.d);

    bad = small_file();
    float nan = NAN;
    memcpy(bad.d + good.n - (8 + 4), &nan, 4);
    expect_load_error(&bad, 262, "token 261 has a non-finite score");
    free(bad.d);

    bad = small_file();
    uint32_t long_len = 7; /* more than max_token_length 6 */
    memcpy(bad.d + good.n - (8 + 4) + 4, &long_len, 4);
    expect_load_error(&bad, 262, "token 261 is 7 bytes, more than max_token_length 6");
    free(bad.d);

    bad = small_file();
    memcpy(bad.d + good.n - 12 - 10 + 8, " t", 2); /* "he" -> " t" */
    expect_load_error(&bad, 262, "token 260 \" t\" appears twice");
    free(bad.d);

    Tokenizer none;
    snprintf(path, sizeof path, "%s/missing.bin", tmpdir);
    ck_assert_int_eq(tokenizer_load(&none, path, 300), ERR_INPUT);
    ck_assert(strstr(err_msg(), "missing.bin") != NULL);
    free(good.d);
    free(extra.d);
}
END_TEST

START_TEST(test_save_is_byte_identical) {
    Tokenizer t;
    load_llama(&t);
    char out[128], orig[512];
    snprintf(out, sizeof out, "%s/copy.bin", tmpdir);
    ck_assert_msg(tokenizer_save(&t, out) == ERR_OK, "%s", err_msg());
    path_in_data(orig, sizeof orig, "llama2c/tokenizer.bin");
    size_t na, nb;
    char *a = read_file(orig, &na), *b = read_file(out, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert(memcmp(a, b, na) == 0);
    free(a);
    free(b);
    /* Saving into a folder that does not exist fails cleanly. */
    snprintf(out, sizeof out, "%s/no/such/dir/t.bin", tmpdir);
    ck_assert_int_eq(tokenizer_save(&t, out), ERR_RUNTIME);
    tokenizer_free(&t);
}
END_TEST

/* ------------------------------------------------------------------------------------------------ */
/* The trainer */

/* A corpus of a few hundred KB: the TinyStories sample repeated with variations and noise. */
static char *training_corpus(size_t *len) {
    char path[512];
    size_t n;
    path_in_data(path, sizeof path, "tinystories/tinystories_sample.txt");
    char *story = read_file(path, &n);
    TextBuf c = {0};
    Rng r;
    rng_seed(&r, 3);
    char noise[256];
    for (int i = 0; i < 40; i++) {
        text_buf_append(&c, story, n);
        size_t k = random_text(&r, noise, 64);
        text_buf_append(&c, noise, k);
    }
    free(story);
    *len = c.len;
    return c.data;
}

START_TEST(test_train_layout_and_roundtrip) {
    size_t n;
    char *corpus = training_corpus(&n);
    Tokenizer t;
    TokenizerTrainStats st;
    ck_assert_msg(tokenizer_train(&t, corpus, n, 600, &st) == ERR_OK, "%s", err_msg());
    ck_assert_int_eq(t.vocab_size, 600);
    size_t l;
    ck_assert(memcmp(tokenizer_piece(&t, 0, &l), "<unk>", 5) == 0);
    ck_assert(memcmp(tokenizer_piece(&t, 1, &l), "\n<s>\n", 5) == 0);
    ck_assert(memcmp(tokenizer_piece(&t, 2, &l), "\n</s>\n", 6) == 0);
    for (int32_t id = TOKENIZER_FIRST_PIECE + 1; id < t.vocab_size; id++) ck_assert(t.score[id] < t.score[id - 1]);

    /* Encoding the corpus gives the trainer's own segmentation (same length, and compresses). */
    TokenList ids = {0};
    tokenizer_encode(&t, corpus, n, false, false, &ids);
    ck_assert_int_eq((int64_t)ids.n, st.corpus_tokens);
    ck_assert_int_eq(st.corpus_bytes, (int64_t)n);
    ck_assert_int_lt(st.unique_chunks, st.chunks);
    ck_assert_msg(ids.n * 3 < n, "%zu tokens for %zu bytes", ids.n, n);
    TextBuf back = {0};
    tokenizer_decode(&t, ids.ids, ids.n, &back);
    ck_assert(back.len == n && memcmp(back.data, corpus, n) == 0);
    token_list_free(&ids);
    text_buf_free(&back);

    /* Arbitrary bytes, and the plain loop agrees with the heap encoder on this vocabulary too. */
    Rng r;
    rng_seed(&r, 99);
    char buf[512];
    for (int it = 0; it < 200; it++) assert_roundtrip(&t, buf, random_text(&r, buf, sizeof buf));
    assert_matches_reference(&t, 17, 100);

    /* Saved and loaded back, it encodes the same. */
    char path[128];
    snprintf(path, sizeof path, "%s/trained.bin", tmpdir);
    ck_assert_msg(tokenizer_save(&t, path) == ERR_OK, "%s", err_msg());
    Tokenizer u;
    ck_assert_msg(tokenizer_load(&u, path, 600) == ERR_OK, "%s", err_msg());
    TokenList a = {0}, b = {0};
    tokenizer_encode(&t, corpus, 5000, true, true, &a);
    tokenizer_encode(&u, corpus, 5000, true, true, &b);
    assert_ids(&a, b.ids, b.n, "after save and load");
    token_list_free(&a);
    token_list_free(&b);
    tokenizer_free(&u);
    tokenizer_free(&t);
    free(corpus);
}
END_TEST

/* Whole characters (0xFE/0xFF standing alone as they do in the corpus below), or a part of one
 * character: a lead byte or continuation first, continuation bytes after. */
static bool piece_is_aligned(const unsigned char *p, size_t n) {
    bool whole = true;
    for (size_t i = 0; i < n && whole;) {
        int c = ref_char_len(p + i, n - i);
        if (c == 0 && p[i] < 0xFE) whole = false;
        i += c ? (size_t)c : 1;
    }
    if (whole) return true;
    if (n > 3 || p[0] < 0x80) return false;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return false;
    return true;
}

START_TEST(test_train_utf8_pieces_and_determinism) {
    /* Multibyte characters become pieces; pieces never join part of a character to a neighbour. */
    const char *text = "你好 你好 你好 世界 世界 naïve naïve 😀😀 😀😀 \xFF\xFE \xFF\xFE ";
    size_t n = strlen(text);
    TextBuf corpus = {0};
    for (int i = 0; i < 20; i++) text_buf_append(&corpus, text, n);
    Tokenizer t, u;
    /* 6 distinct chunks: 25 merges turn each into one token, and then nothing is left to learn. */
    ck_assert_int_eq(tokenizer_train(&t, corpus.data, corpus.len, 285, NULL), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "only 284 of the 285") != NULL, "%s", err_msg());
    ck_assert_msg(tokenizer_train(&t, corpus.data, corpus.len, 284, NULL) == ERR_OK, "%s", err_msg());
    ck_assert_msg(tokenizer_train(&u, corpus.data, corpus.len, 284, NULL) == ERR_OK, "%s", err_msg());
    ck_assert(tokenizer_find(&t, " 你好", strlen(" 你好")) >= 0);
    ck_assert(tokenizer_find(&t, " 😀😀", strlen(" 😀😀")) >= 0);
    ck_assert(tokenizer_find(&t, " naïve", strlen(" naïve")) >= 0);
    ck_assert(tokenizer_find(&t, " \xFF\xFE", 3) >= 0);
    for (int32_t id = TOKENIZER_FIRST_PIECE; id < t.vocab_size; id++) {
        size_t la, lb;
        const char *a = tokenizer_piece(&t, id, &la), *b = tokenizer_piece(&u, id, &lb);
        ck_assert(la == lb && memcmp(a, b, la) == 0 && t.score[id] == u.score[id]);
        ck_assert_msg(piece_is_aligned((const unsigned char *)a, la), "piece %d splits a character", id);
    }
    assert_roundtrip(&t, corpus.data, corpus.len);
    TokenList ids = {0};
    tokenizer_encode(&t, corpus.data, corpus.len, false, false, &ids);
    ck_assert_uint_eq(ids.n, 20 * 11 + 1); /* every chunk a single token; the last is a lone " " */
    token_list_free(&ids);
    tokenizer_free(&t);
    tokenizer_free(&u);
    text_buf_free(&corpus);
}
END_TEST

START_TEST(test_train_rejects_bad_requests) {
    Tokenizer t;
    ck_assert_int_eq(tokenizer_train(&t, "abc", 3, 100, NULL), ERR_INPUT);
    ck_assert(strstr(err_msg(), "vocab_size 100") != NULL);
    ck_assert_int_eq(tokenizer_train(&t, "abab abab", 9, 400, NULL), ERR_INPUT);
    ck_assert_msg(strstr(err_msg(), "corpus too small") != NULL, "%s", err_msg());
    ck_assert_int_eq(t.vocab_size, 0);
    /* The empty corpus can only give the base layout. */
    ck_assert_int_eq(tokenizer_train(&t, "", 0, 259, NULL), ERR_OK);
    ck_assert_int_eq(t.vocab_size, 259);
    assert_roundtrip(&t, "\xF0\x9F\x98\x80 x\0y", 7);
    tokenizer_free(&t);
}
END_TEST

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_tokenizer.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_llama2_matches_sentencepiece);
    tcase_add_test(tc, test_llama2_bos_eos_and_empty);
    tcase_add_test(tc, test_llama2_decode_piece_streams);
    tcase_add_test(tc, test_llama2_roundtrip_arbitrary_bytes);
    tcase_add_test(tc, test_llama2_matches_plain_loop);
    tcase_add_test(tc, test_llama2_encode_on_many_threads);
    tcase_add_test(tc, test_load_rejects_malformed_files);
    tcase_add_test(tc, test_save_is_byte_identical);
    tcase_add_test(tc, test_train_layout_and_roundtrip);
    tcase_add_test(tc, test_train_utf8_pieces_and_determinism);
    tcase_add_test(tc, test_train_rejects_bad_requests);
    suite_add_tcase(s, tc);
    int rc = testutil_run(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) return 1;
    return rc;
}
