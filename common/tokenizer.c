/*
 * tokenizer — see tokenizer.h for the format, the encoding rules and the trainer.
 *
 * Invariants:
 * - ids [0, vocab_size) each have a piece in `arena` at offset[id], len[id] bytes, and a score.
 * - `table` holds exactly the pieces with id >= TOKENIZER_FIRST_PIECE (specials and byte tokens are
 *   never produced by merging, as in SentencePiece where they are not NORMAL pieces).
 * - A symbol (a token being built during encoding) is either a part of one UTF-8 character or a
 *   run of whole characters; invalid bytes count as one-byte characters. This is what lets encoding
 *   start from whole characters and still give exactly the byte-level trainer's segmentation.
 */
#include "tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "util.h"

/* ------------------------------------------------------------------------------------------------ */
/* Growable buffers */

void token_list_push(TokenList *l, int32_t id) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->ids = xrealloc(l->ids, l->cap * sizeof *l->ids);
    }
    l->ids[l->n++] = id;
}

void token_list_free(TokenList *l) {
    free(l->ids);
    memset(l, 0, sizeof *l);
}

void text_buf_append(TextBuf *b, const void *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void text_buf_free(TextBuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------------------------------------ */
/* UTF-8 */

/* Length of the valid UTF-8 character (RFC 3629: no overlongs, surrogates or > U+10FFFF) at s, or 0
 * when the byte at s does not start one. */
static int utf8_char_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < (size_t)need || s[1] < lo || s[1] > hi) return 0;
    for (int k = 2; k < need; k++)
        if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    return need;
}

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

static void utf8_sanitize_append(TextBuf *out, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t run = i; /* copy runs of valid characters in one go */
        int c;
        while (run < n && (c = utf8_char_len((const uint8_t *)s + run, n - run)) > 0) run += (size_t)c;
        text_buf_append(out, s + i, run - i);
        if (run < n) {
            text_buf_append(out, REPLACEMENT, 3);
            run++;
        }
        i = run;
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* The piece table */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static void tok_init(Tokenizer *t, int32_t capacity) {
    memset(t, 0, sizeof *t);
    t->cap = capacity;
    t->offset = xmalloc((size_t)capacity * sizeof *t->offset);
    t->len = xmalloc((size_t)capacity * sizeof *t->len);
    t->score = xmalloc((size_t)capacity * sizeof *t->score);
    t->table_cap = 1024;
    while (t->table_cap < 2 * (size_t)capacity) t->table_cap *= 2;
    t->table = xmalloc(t->table_cap * sizeof *t->table);
    for (size_t i = 0; i < t->table_cap; i++) t->table[i] = -1;
    for (int b = 0; b < 256; b++) t->bytes[b] = (uint8_t)b;
}

int32_t tokenizer_find(const Tokenizer *t, const char *s, size_t n) {
    if (n == 0 || n > (size_t)t->max_piece_len) return -1;
    size_t mask = t->table_cap - 1;
    for (size_t h = hash_bytes(s, n) & mask;; h = (h + 1) & mask) {
        int32_t id = t->table[h];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(t->arena + t->offset[id], s, n) == 0) return id;
    }
}

static bool inner_pair(const Tokenizer *t, uint8_t a, uint8_t b) {
    return (t->inner[a][b >> 3] >> (b & 7)) & 1;
}

/* Append a token; returns its id, or -1 (nothing added) if a merged piece duplicates another. */
static int32_t tok_add(Tokenizer *t, const char *s, size_t n, float score) {
    ASSERT(t->vocab_size < t->cap);
    int32_t id = t->vocab_size;
    /* First, since tokenizer_find skips strings longer than the longest piece. */
    if ((int64_t)n > t->max_piece_len) t->max_piece_len = (int32_t)n;
    if (id >= TOKENIZER_FIRST_PIECE) {
        ASSERT(n > 0);
        if (tokenizer_find(t, s, n) >= 0) return -1;
    }
    if (t->arena_len + n > t->arena_cap) {
        t->arena_cap = t->arena_cap ? 2 * t->arena_cap : 4096;
        while (t->arena_cap < t->arena_len + n) t->arena_cap *= 2;
        t->arena = xrealloc(t->arena, t->arena_cap);
    }
    memcpy(t->arena + t->arena_len, s, n);
    t->offset[id] = (uint32_t)t->arena_len;
    t->len[id] = (uint32_t)n;
    t->score[id] = score;
    t->arena_len += n;
    t->vocab_size++;
    if (id >= TOKENIZER_FIRST_PIECE) {
        size_t mask = t->table_cap - 1, h = hash_bytes(s, n) & mask;
        while (t->table[h] >= 0) h = (h + 1) & mask;
        t->table[h] = id;
        for (size_t i = 0; i + 1 < n; i++) {
            uint8_t a = (uint8_t)s[i], b = (uint8_t)s[i + 1];
            t->inner[a][b >> 3] |= (uint8_t)(1u << (b & 7));
        }
    }
    return id;
}

static void byte_piece_text(char out[7], int b) { snprintf(out, 7, "<0x%02X>", b); }

/* The 259 tokens every vocabulary starts with, as in Llama 2's tokenizer.bin. */
static void tok_add_base(Tokenizer *t) {
    tok_add(t, "<unk>", 5, 0.0f);
    tok_add(t, "\n<s>\n", 5, 0.0f);
    tok_add(t, "\n</s>\n", 6, 0.0f);
    for (int b = 0; b < 256; b++) {
        char p[7];
        byte_piece_text(p, b);
        tok_add(t, p, 6, 0.0f);
    }
}

void tokenizer_free(Tokenizer *t) {
    free(t->arena);
    free(t->offset);
    free(t->len);
    free(t->score);
    free(t->table);
    memset(t, 0, sizeof *t);
}

const char *tokenizer_piece(const Tokenizer *t, int32_t id, size_t *len) {
    ASSERT(id >= 0 && id < t->vocab_size);
    if (id >= TOKENIZER_BYTE0 && id < TOKENIZER_FIRST_PIECE) {
        *len = 1;
        return (const char *)&t->bytes[id - TOKENIZER_BYTE0];
    }
    *len = t->len[id];
    return t->arena + t->offset[id];
}

/* ------------------------------------------------------------------------------------------------ */
/* Loading and saving */

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float get_f32(const uint8_t *p) {
    uint32_t u = get_u32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Longest piece that a plausible file can declare; Llama 2's is 27. */
#define MAX_TOKEN_LENGTH_LIMIT 65536

/* Count whole records from offset `off` to the end, or -1 if the rest does not parse as records. */
static int64_t count_records(const uint8_t *d, size_t size, size_t off, uint32_t max_len) {
    int64_t k = 0;
    while (off < size) {
        if (size - off < 8) return -1;
        uint32_t n = get_u32(d + off + 4);
        if (n > max_len || size - off - 8 < n) return -1;
        off += 8 + n;
        k++;
    }
    return k;
}

static Err parse_tokenizer(Tokenizer *t, const char *path, const uint8_t *d, size_t size,
                           int32_t vocab_size) {
    if (size < 4) return err_set(ERR_INPUT, "%s: too short for a tokenizer.bin header (%zu bytes)", path, size);
    uint32_t max_len = get_u32(d);
    if (max_len == 0 || max_len > MAX_TOKEN_LENGTH_LIMIT)
        return err_set(ERR_INPUT, "%s: max_token_length %u is implausible: not a tokenizer.bin?", path, max_len);
    size_t off = 4;
    for (int32_t id = 0; id < vocab_size; id++) {
        if (off == size)
            return err_set(ERR_INPUT, "%s: holds %d tokens, expected vocab_size %d", path, id, vocab_size);
        if (size - off < 8)
            return err_set(ERR_INPUT, "%s: truncated in the header of token %d (byte %zu)", path, id, off);
        float score = get_f32(d + off);
        uint32_t n = get_u32(d + off + 4);
        if (!isfinite(score))
            return err_set(ERR_INPUT, "%s: token %d has a non-finite score (byte %zu): garbled file?", path, id, off);
        if (n > max_len)
            return err_set(ERR_INPUT, "%s: token %d is %u bytes, more than max_token_length %u (byte %zu): garbled file?",
                           path, id, n, max_len, off);
        if (size - off - 8 < n)
            return err_set(ERR_INPUT, "%s: truncated in token %d (needs %u bytes, %zu left)", path, id, n, size - off - 8);
        const char *s = (const char *)d + off + 8;
        off += 8 + n;
        if (id >= TOKENIZER_BYTE0 && id < TOKENIZER_FIRST_PIECE) {
            char want[7];
            byte_piece_text(want, id - TOKENIZER_BYTE0);
            if (n != 6 || memcmp(s, want, 6) != 0)
                return err_set(ERR_INPUT, "%s: token %d is \"%.*s\", expected the byte token %s (ids 3..258 must be <0x00>..<0xFF>)",
                               path, id, (int)(n < 16 ? n : 16), s, want);
        }
        if (id >= TOKENIZER_FIRST_PIECE && n == 0)
            return err_set(ERR_INPUT, "%s: token %d is empty", path, id);
        if (tok_add(t, s, n, score) < 0)
            return err_set(ERR_INPUT, "%s: token %d \"%.*s\" appears twice", path, id, (int)n, s);
    }
    if (off != size) {
        int64_t more = count_records(d, size, off, max_len);
        if (more > 0)
            return err_set(ERR_INPUT, "%s: holds %lld tokens, expected vocab_size %d", path,
                           (long long)(vocab_size + more), vocab_size);
        return err_set(ERR_INPUT, "%s: %zu stray bytes after token %d", path, size - off, vocab_size - 1);
    }
    return ERR_OK;
}

Err tokenizer_load(Tokenizer *t, const char *path, int32_t vocab_size) {
    memset(t, 0, sizeof *t);
    if (vocab_size < TOKENIZER_FIRST_PIECE)
        return err_set(ERR_INPUT, "%s: vocab_size %d is below %d (3 specials and 256 byte tokens)", path,
                       vocab_size, TOKENIZER_FIRST_PIECE);
    MappedFile mf;
    Err rc = file_map(&mf, path);
    if (rc != ERR_OK) return rc;
    tok_init(t, vocab_size);
    rc = parse_tokenizer(t, path, mf.data, mf.size, vocab_size);
    file_unmap(&mf);
    if (rc != ERR_OK) tokenizer_free(t);
    return rc;
}

Err tokenizer_save(const Tokenizer *t, const char *path) {
    AtomicFile af;
    Err rc = atomic_open(&af, path);
    if (rc != ERR_OK) return rc;
    uint32_t max_len = 0;
    for (int32_t id = 0; id < t->vocab_size; id++)
        if (t->len[id] > max_len) max_len = t->len[id];
    uint8_t head[8];
    put_u32(head, max_len);
    bool ok = fwrite(head, 4, 1, af.f) == 1;
    for (int32_t id = 0; ok && id < t->vocab_size; id++) {
        uint32_t bits;
        memcpy(&bits, &t->score[id], sizeof bits);
        put_u32(head, bits);
        put_u32(head + 4, t->len[id]);
        ok = fwrite(head, 8, 1, af.f) == 1 &&
             (t->len[id] == 0 || fwrite(t->arena + t->offset[id], t->len[id], 1, af.f) == 1);
    }
    if (!ok) {
        rc = err_set(ERR_RUNTIME, "%s: cannot write: %s", path, strerror(errno));
        atomic_abort(&af);
        return rc;
    }
    return atomic_commit(&af);
}

/* ------------------------------------------------------------------------------------------------ */
/* Binary heaps: `before(x, y)` says x comes out first. Both heaps below are hot (one entry per
 * candidate merge, one per pair count change), so they are generated per type, not generic. */

#define DEFINE_HEAP(name, Heap, T, before)                                                        \
    static void name##_push(Heap *h, T x) {                                                       \
        if (h->n == h->cap) {                                                                     \
            h->cap = h->cap ? 2 * h->cap : 64;                                                    \
            h->a = xrealloc(h->a, h->cap * sizeof *h->a);                                         \
        }                                                                                         \
        size_t i = h->n++;                                                                        \
        while (i > 0 && before(&x, &h->a[(i - 1) / 2])) {                                         \
            h->a[i] = h->a[(i - 1) / 2];                                                          \
            i = (i - 1) / 2;                                                                      \
        }                                                                                         \
        h->a[i] = x;                                                                              \
    }                                                                                             \
    static T name##_pop(Heap *h) {                                                                \
        T top = h->a[0], last = h->a[--h->n];                                                     \
        size_t i = 0;                                                                             \
        for (;;) {                                                                                \
            size_t c = 2 * i + 1;                                                                 \
            if (c >= h->n) break;                                                                 \
            if (c + 1 < h->n && before(&h->a[c + 1], &h->a[c])) c++;                              \
            if (!before(&h->a[c], &last)) break;                                                  \
            h->a[i] = h->a[c];                                                                    \
            i = c;                                                                                \
        }                                                                                         \
        if (h->n > 0) h->a[i] = last;                                                             \
        return top;                                                                               \
    }

/* ------------------------------------------------------------------------------------------------ */
/* The merge loop, shared by encoding and training */

enum { SYM_CHAR_START = 1, SYM_CHAR_END = 2 };

typedef struct {
    int32_t id;
    int32_t start, len; /* bytes of the segment; len 0 once merged into the left neighbour */
    int32_t prev, next; /* linked list while merging, -1 at the ends */
    uint8_t flags;      /* SYM_CHAR_START: begins a character; SYM_CHAR_END: ends one */
} Sym;

typedef struct {
    float score;
    int32_t left, right, len_left, len_right, id;
} Cand;

typedef struct {
    Cand *a;
    size_t n, cap;
} CandHeap;

/* Higher score first; on ties the leftmost pair, as llama2.c's scan and SentencePiece do. */
static bool cand_before(const Cand *x, const Cand *y) {
    return x->score > y->score || (x->score == y->score && x->left < y->left);
}

DEFINE_HEAP(cand_heap, CandHeap, Cand, cand_before)

/* May symbols a and b (adjacent) become one? Only within one character, or whole characters. */
static bool merge_allowed(const Sym *a, const Sym *b) {
    if (!(a->flags & SYM_CHAR_END)) return true; /* the boundary is inside a character */
    return (a->flags & SYM_CHAR_START) && (b->flags & SYM_CHAR_END);
}

static void cand_push(const Tokenizer *t, const char *bytes, const Sym *syms, int32_t l, int32_t r,
                      CandHeap *h) {
    const Sym *a = &syms[l], *b = &syms[r];
    if (!merge_allowed(a, b)) return;
    int32_t id = tokenizer_find(t, bytes + a->start, (size_t)a->len + (size_t)b->len);
    if (id < 0) return;
    cand_heap_push(h, (Cand){t->score[id], l, r, a->len, b->len, id});
}

/* Merge syms[0..m) (contiguous spans of `bytes`, in order) to the fixed point; the result is
 * compacted into syms[0..k) and k returned. */
static int32_t merge_run(const Tokenizer *t, const char *bytes, Sym *syms, int32_t m, CandHeap *h) {
    h->n = 0;
    for (int32_t i = 0; i < m; i++) {
        syms[i].prev = i - 1;
        syms[i].next = i + 1 < m ? i + 1 : -1;
    }
    for (int32_t i = 0; i + 1 < m; i++) cand_push(t, bytes, syms, i, i + 1, h);
    while (h->n > 0) {
        Cand c = cand_heap_pop(h);
        Sym *a = &syms[c.left], *b = &syms[c.right];
        if (a->len != c.len_left || a->next != c.right || b->len != c.len_right) continue; /* stale */
        a->id = c.id;
        a->len += b->len;
        a->flags = (uint8_t)((a->flags & SYM_CHAR_START) | (b->flags & SYM_CHAR_END));
        a->next = b->next;
        if (b->next >= 0) syms[b->next].prev = c.left;
        b->len = 0;
        if (a->prev >= 0) cand_push(t, bytes, syms, a->prev, c.left, h);
        if (a->next >= 0) cand_push(t, bytes, syms, c.left, a->next, h);
    }
    int32_t k = 0;
    for (int32_t i = m > 0 ? 0 : -1; i >= 0;) {
        int32_t next = syms[i].next;
        syms[k++] = syms[i];
        i = next;
    }
    return k;
}

/* ------------------------------------------------------------------------------------------------ */
/* Encoding */

typedef struct {
    Sym *syms;
    int32_t n, cap;
} SymBuf;

static void sym_push(SymBuf *s, Sym x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->syms = xrealloc(s->syms, (size_t)s->cap * sizeof *s->syms);
    }
    s->syms[s->n++] = x;
}

/* The initial symbols of one character at bytes[i..i+c) (c = 0: an invalid byte): the piece if the
 * character is one, else its bytes as byte tokens. `base` is where the segment starts. */
static void push_char(const Tokenizer *t, const char *bytes, size_t i, int c, size_t base, SymBuf *s) {
    int32_t id = c > 0 ? tokenizer_find(t, bytes + i, (size_t)c) : -1;
    if (id >= 0) {
        sym_push(s, (Sym){id, (int32_t)(i - base), c, 0, 0, SYM_CHAR_START | SYM_CHAR_END});
        return;
    }
    int n = c > 0 ? c : 1;
    for (int k = 0; k < n; k++) {
        uint8_t flags = (uint8_t)((k == 0 ? SYM_CHAR_START : 0) | (k == n - 1 ? SYM_CHAR_END : 0));
        sym_push(s, (Sym){TOKENIZER_BYTE0 + (uint8_t)bytes[i + k], (int32_t)(i + k - base), 1, 0, 0, flags});
    }
}

static void flush_segment(const Tokenizer *t, const char *seg, SymBuf *s, CandHeap *h, TokenList *out) {
    int32_t k = merge_run(t, seg, s->syms, s->n, h);
    for (int32_t i = 0; i < k; i++) token_list_push(out, s->syms[i].id);
    s->n = 0;
}

void tokenizer_encode(const Tokenizer *t, const char *text, size_t len, bool bos, bool eos,
                      TokenList *out) {
    if (bos) token_list_push(out, TOKENIZER_BOS);
    ASSERT(len < (size_t)INT32_MAX); /* symbol offsets are int32: callers encode documents, not disks */
    if (len > 0) {
        size_t n = len + 1;
        char *buf = xmalloc(n);
        buf[0] = ' '; /* the dummy prefix */
        memcpy(buf + 1, text, len);
        SymBuf s = {0};
        CandHeap h = {0};
        size_t base = 0;
        for (size_t i = 0; i < n;) {
            int c = utf8_char_len((const uint8_t *)buf + i, n - i);
            /* No piece holds this byte pair, so no merge can cross it: merge what came before. */
            if (s.n > 0 && !inner_pair(t, (uint8_t)buf[i - 1], (uint8_t)buf[i])) {
                flush_segment(t, buf + base, &s, &h, out);
                base = i;
            }
            push_char(t, buf, i, c, base, &s);
            i += c > 0 ? (size_t)c : 1;
        }
        flush_segment(t, buf + base, &s, &h, out);
        free(s.syms);
        free(h.a);
        free(buf);
    }
    if (eos) token_list_push(out, TOKENIZER_EOS);
}

/* ------------------------------------------------------------------------------------------------ */
/* Decoding */

static const char UNK_SURFACE[] = " \xE2\x81\x87 "; /* " ⁇ ", SentencePiece's text for <unk> */

const char *tokenizer_decode_piece(const Tokenizer *t, int32_t prev, int32_t id, size_t *len) {
    ASSERT(id >= 0 && id < t->vocab_size);
    if (id == TOKENIZER_BOS || id == TOKENIZER_EOS) {
        *len = 0;
        return "";
    }
    if (id == TOKENIZER_UNK) {
        *len = sizeof UNK_SURFACE - 1;
        return UNK_SURFACE;
    }
    const char *p = tokenizer_piece(t, id, len);
    if ((prev < 0 || prev == TOKENIZER_BOS) && *len > 0 && p[0] == ' ') { /* the dummy prefix */
        p++;
        (*len)--;
    }
    return p;
}

void tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, TextBuf *out) {
    /* Only the first piece that is text loses its dummy-prefix space; BOS/EOS in between are not
     * text (SentencePiece's DecodeIds does the same). */
    int32_t prev = -1;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = tokenizer_decode_piece(t, prev, ids[i], &len);
        text_buf_append(out, p, len);
        if (ids[i] != TOKENIZER_BOS && ids[i] != TOKENIZER_EOS) prev = ids[i];
    }
    if (!out->data) text_buf_append(out, "", 0); /* always a valid C string */
}

void tokenizer_decode_utf8(const Tokenizer *t, const int32_t *ids, size_t n, TextBuf *out) {
    TextBuf raw = {0};
    tokenizer_decode(t, ids, n, &raw);
    utf8_sanitize_append(out, raw.data, raw.len);
    if (!out->data) text_buf_append(out, "", 0);
    text_buf_free(&raw);
}

/* ------------------------------------------------------------------------------------------------ */
/* Training */

/* A distinct chunk of the corpus and its current segmentation (syms[sym_off .. sym_off + nsym)). */
typedef struct {
    size_t off;          /* first occurrence in the prefixed corpus */
    int32_t len, nsym;
    int64_t sym_off, count;
} Chunk;

/* Statistics of one adjacent pair of ids (a, b) over all chunks. */
typedef struct {
    uint64_t key;        /* a << 32 | b */
    int64_t count;       /* occurrences, weighted by chunk counts */
    int32_t *chunks;     /* chunks it has occurred in (may hold chunks that no longer have it) */
    int32_t nchunks, cap;
    int64_t dirty_step;  /* last step that changed count */
} PairStat;

typedef struct {
    int64_t count;
    uint64_t key;
    int32_t pair;
} PairEntry;

typedef struct {
    PairEntry *a;
    size_t n, cap;
} PairHeap;

typedef struct {
    PairStat *pairs;
    int32_t n, cap;
    int32_t *table;      /* open addressing over keys, -1 empty */
    size_t table_cap;
    PairHeap heap;       /* lazy max-heap: entries whose count is stale are skipped */
    int32_t *dirty;
    int32_t ndirty, dirty_cap;
} PairIndex;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static int32_t pair_slot_find(const PairIndex *p, uint64_t key, size_t *slot) {
    size_t mask = p->table_cap - 1;
    for (size_t h = mix64(key) & mask;; h = (h + 1) & mask) {
        if (p->table[h] < 0 || p->pairs[p->table[h]].key == key) {
            *slot = h;
            return p->table[h];
        }
    }
}

static void pair_table_grow(PairIndex *p) {
    free(p->table);
    p->table_cap = p->table_cap ? 2 * p->table_cap : 1 << 16;
    p->table = xmalloc(p->table_cap * sizeof *p->table);
    for (size_t i = 0; i < p->table_cap; i++) p->table[i] = -1;
    for (int32_t i = 0; i < p->n; i++) {
        size_t slot;
        pair_slot_find(p, p->pairs[i].key, &slot);
        p->table[slot] = i;
    }
}

static int32_t pair_get(PairIndex *p, uint64_t key, bool create) {
    size_t slot;
    int32_t i = pair_slot_find(p, key, &slot);
    if (i >= 0 || !create) return i;
    if (2 * (size_t)(p->n + 1) > p->table_cap) {
        pair_table_grow(p);
        pair_slot_find(p, key, &slot);
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 4096;
        p->pairs = xrealloc(p->pairs, (size_t)p->cap * sizeof *p->pairs);
    }
    i = p->n++;
    p->pairs[i] = (PairStat){.key = key, .dirty_step = -1};
    p->table[slot] = i;
    return i;
}

static bool entry_before(const PairEntry *x, const PairEntry *y) {
    return x->count > y->count || (x->count == y->count && x->key < y->key); /* deterministic ties */
}

DEFINE_HEAP(pair_heap, PairHeap, PairEntry, entry_before)

/* Add `delta` occurrences of every allowed adjacent pair of chunk ci; on increase, remember the chunk. */
static void chunk_count_pairs(PairIndex *p, const Sym *syms, int32_t nsym, int32_t ci, int64_t delta,
                              int64_t step) {
    for (int32_t i = 0; i + 1 < nsym; i++) {
        if (!merge_allowed(&syms[i], &syms[i + 1])) continue;
        uint64_t key = (uint64_t)(uint32_t)syms[i].id << 32 | (uint32_t)syms[i + 1].id;
        int32_t pi = pair_get(p, key, true);
        PairStat *ps = &p->pairs[pi];
        ps->count += delta;
        ASSERT(ps->count >= 0);
        if (delta > 0 && (ps->nchunks == 0 || ps->chunks[ps->nchunks - 1] != ci)) {
            if (ps->nchunks == ps->cap) {
                ps->cap = ps->cap ? 2 * ps->cap : 4;
                ps->chunks = xrealloc(ps->chunks, (size_t)ps->cap * sizeof *ps->chunks);
            }
            ps->chunks[ps->nchunks++] = ci;
        }
        if (ps->dirty_step != step) {
            ps->dirty_step = step;
            if (p->ndirty == p->dirty_cap) {
                p->dirty_cap = p->dirty_cap ? 2 * p->dirty_cap : 4096;
                p->dirty = xrealloc(p->dirty, (size_t)p->dirty_cap * sizeof *p->dirty);
            }
            p->dirty[p->ndirty++] = pi;
        }
    }
}

static void pair_index_free(PairIndex *p) {
    for (int32_t i = 0; i < p->n; i++) free(p->pairs[i].chunks);
    free(p->pairs);
    free(p->table);
    free(p->heap.a);
    free(p->dirty);
}

enum { CLASS_SPACE, CLASS_NEWLINE, CLASS_OTHER };

static int byte_class(uint8_t c) {
    return c == ' ' ? CLASS_SPACE : (c == '\n' || c == '\r') ? CLASS_NEWLINE : CLASS_OTHER;
}

/* Cut the prefixed corpus into chunks and count the distinct ones. */
static void collect_chunks(const char *text, size_t n, Chunk **out, int32_t *nout, int64_t *total) {
    size_t cap = 1024;
    while (cap < n / 2) cap *= 2;
    int32_t *table = xmalloc(cap * sizeof *table);
    for (size_t i = 0; i < cap; i++) table[i] = -1;
    Chunk *chunks = NULL;
    int32_t nc = 0, ccap = 0;
    *total = 0;
    for (size_t s = 0; s < n;) {
        size_t e = s + 1;
        while (e < n) {
            int a = byte_class((uint8_t)text[e - 1]), b = byte_class((uint8_t)text[e]);
            if (a != b && !(a == CLASS_SPACE && b == CLASS_OTHER)) break;
            e++;
        }
        size_t len = e - s, mask = cap - 1;
        size_t h = hash_bytes(text + s, len) & mask;
        while (table[h] >= 0 && !((size_t)chunks[table[h]].len == len &&
                                  memcmp(text + chunks[table[h]].off, text + s, len) == 0))
            h = (h + 1) & mask;
        if (table[h] >= 0) {
            chunks[table[h]].count++;
        } else {
            if (nc == ccap) {
                ccap = ccap ? 2 * ccap : 1024;
                chunks = xrealloc(chunks, (size_t)ccap * sizeof *chunks);
            }
            chunks[nc] = (Chunk){.off = s, .len = (int32_t)len, .count = 1};
            table[h] = nc++;
            if (2 * (size_t)nc > cap) { /* grow and rehash */
                free(table);
                cap *= 2;
                table = xmalloc(cap * sizeof *table);
                for (size_t i = 0; i < cap; i++) table[i] = -1;
                for (int32_t i = 0; i < nc; i++) {
                    size_t g = hash_bytes(text + chunks[i].off, (size_t)chunks[i].len) & (cap - 1);
                    while (table[g] >= 0) g = (g + 1) & (cap - 1);
                    table[g] = i;
                }
            }
        }
        (*total)++;
        s = e;
    }
    free(table);
    *out = chunks;
    *nout = nc;
}

/* The id whose raw bytes are s[0..n) during training: a byte token for one byte, else a piece. */
static int32_t train_find(const Tokenizer *t, const char *s, size_t n) {
    return n == 1 ? TOKENIZER_BYTE0 + (uint8_t)s[0] : tokenizer_find(t, s, n);
}

Err tokenizer_train(Tokenizer *t, const char *corpus, size_t len, int32_t vocab_size,
                    TokenizerTrainStats *stats) {
    memset(t, 0, sizeof *t);
    if (vocab_size < TOKENIZER_FIRST_PIECE || vocab_size > (1 << 24))
        return err_set(ERR_INPUT, "vocab_size %d out of range [%d, %d]", vocab_size, TOKENIZER_FIRST_PIECE, 1 << 24);
    if (len >= (size_t)INT32_MAX)
        return err_set(ERR_INPUT, "corpus of %zu bytes is too large (at most 2 GiB)", len);
    tok_init(t, vocab_size);
    tok_add_base(t);

    /* The corpus as tokenizer_encode sees it: with the dummy prefix. */
    size_t n = len + 1;
    char *text = xmalloc(n);
    text[0] = ' ';
    memcpy(text + 1, corpus, len);
    Chunk *chunks;
    int32_t nchunks;
    int64_t total_chunks;
    collect_chunks(text, n, &chunks, &nchunks, &total_chunks);

    /* Every chunk starts as bytes; segment flags mark the UTF-8 characters. */
    size_t unique_bytes = 0;
    for (int32_t ci = 0; ci < nchunks; ci++) unique_bytes += (size_t)chunks[ci].len;
    Sym *pool = xmalloc(unique_bytes * sizeof *pool);
    int64_t used = 0;
    PairIndex pi = {0};
    pair_table_grow(&pi);
    for (int32_t ci = 0; ci < nchunks; ci++) {
        Chunk *c = &chunks[ci];
        c->sym_off = used;
        const char *w = text + c->off;
        for (int32_t i = 0; i < c->len;) {
            int cl = utf8_char_len((const uint8_t *)w + i, (size_t)(c->len - i));
            int nb = cl > 0 ? cl : 1;
            for (int k = 0; k < nb; k++)
                pool[used++] = (Sym){TOKENIZER_BYTE0 + (uint8_t)w[i + k], i + k, 1, 0, 0,
                                     (uint8_t)((k == 0 ? SYM_CHAR_START : 0) | (k == nb - 1 ? SYM_CHAR_END : 0))};
            i += nb;
        }
        c->nsym = c->len;
        chunk_count_pairs(&pi, pool + c->sym_off, c->nsym, ci, c->count, 0);
    }
    for (int32_t i = 0; i < pi.ndirty; i++)
        pair_heap_push(&pi.heap, (PairEntry){pi.pairs[pi.dirty[i]].count, pi.pairs[pi.dirty[i]].key, pi.dirty[i]});
    pi.ndirty = 0;

    int64_t *seen = xmalloc((size_t)(nchunks > 0 ? nchunks : 1) * sizeof *seen);
    for (int32_t i = 0; i < nchunks; i++) seen[i] = -1;
    int32_t *touched = xmalloc((size_t)(nchunks > 0 ? nchunks : 1) * sizeof *touched);
    CandHeap heap = {0};
    char *piece = xmalloc((size_t)n + 1);
    Err rc = ERR_OK;
    for (int64_t step = 1; t->vocab_size < vocab_size; step++) {
        /* The most frequent pair whose count is current. */
        int32_t best = -1;
        while (pi.heap.n > 0) {
            PairEntry e = pair_heap_pop(&pi.heap);
            if (e.count > 0 && e.count == pi.pairs[e.pair].count) {
                best = e.pair;
                break;
            }
        }
        if (best < 0) {
            rc = err_set(ERR_INPUT, "corpus too small: only %d of the %d tokens asked for can be learned "
                         "(%zu bytes, %d distinct chunks)", t->vocab_size, vocab_size, len, nchunks);
            break;
        }
        uint64_t key = pi.pairs[best].key;
        size_t la, lb;
        const char *pa = tokenizer_piece(t, (int32_t)(key >> 32), &la);
        const char *pb = tokenizer_piece(t, (int32_t)(key & 0xffffffffu), &lb);
        memcpy(piece, pa, la);
        memcpy(piece + la, pb, lb);
        int32_t id = tok_add(t, piece, la + lb, (float)(TOKENIZER_FIRST_PIECE - t->vocab_size));
        /* Every chunk's segmentation is what encoding gives, which never leaves two neighbours that
         * form a piece: so the new piece cannot exist yet. */
        ASSERT(id >= 0);

        /* The chunks where the new piece can form: those holding any split of it as a pair. */
        int32_t ntouched = 0;
        for (size_t k = 1; k < la + lb; k++) {
            int32_t x = train_find(t, piece, k), y = train_find(t, piece + k, la + lb - k);
            if (x < 0 || y < 0) continue;
            int32_t p = pair_get(&pi, (uint64_t)(uint32_t)x << 32 | (uint32_t)y, false);
            if (p < 0) continue;
            for (int32_t j = 0; j < pi.pairs[p].nchunks; j++) {
                int32_t ci = pi.pairs[p].chunks[j];
                if (seen[ci] != step) {
                    seen[ci] = step;
                    touched[ntouched++] = ci;
                }
            }
        }
        for (int32_t j = 0; j < ntouched; j++) {
            Chunk *c = &chunks[touched[j]];
            Sym *syms = pool + c->sym_off;
            chunk_count_pairs(&pi, syms, c->nsym, touched[j], -c->count, step);
            c->nsym = merge_run(t, text + c->off, syms, c->nsym, &heap);
            chunk_count_pairs(&pi, syms, c->nsym, touched[j], c->count, step);
        }
        for (int32_t i = 0; i < pi.ndirty; i++) {
            PairStat *ps = &pi.pairs[pi.dirty[i]];
            if (ps->count > 0) pair_heap_push(&pi.heap, (PairEntry){ps->count, ps->key, pi.dirty[i]});
        }
        pi.ndirty = 0;
    }
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->corpus_bytes = (int64_t)len;
        stats->chunks = total_chunks;
        stats->unique_chunks = nchunks;
        for (int32_t i = 0; i < nchunks; i++) stats->corpus_tokens += chunks[i].count * chunks[i].nsym;
    }
    free(piece);
    free(heap.a);
    free(touched);
    free(seen);
    pair_index_free(&pi);
    free(pool);
    free(chunks);
    free(text);
    if (rc != ERR_OK) tokenizer_free(t);
    return rc;
}
