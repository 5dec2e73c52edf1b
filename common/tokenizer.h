/*
 * tokenizer — the Llama 2 tokenizer in llama2.c's tokenizer.bin format, and a BPE trainer.
 *
 * Ids follow the Llama 2 layout: 0 <unk>, 1 BOS <s>, 2 EOS </s>, 3..258 the byte tokens <0x00>..<0xFF>
 * (id = byte + 3), then pieces (merges), a higher score meaning "merge earlier".
 *
 * tokenizer.bin (little-endian, as written by llama2.c's tokenizer.py; docs/formats.md):
 *     uint32 max_token_length
 *     vocab_size times: float32 score, uint32 len, len bytes (the piece, '▁' already turned into ' ')
 * The file does not store vocab_size: the loader is told it (by the checkpoint's config) and checks that
 * the file holds exactly that many tokens.
 *
 * Encoding (what llama2.c and SentencePiece do for Llama 2):
 *   1. a dummy-prefix space goes in front of non-empty text;
 *   2. each UTF-8 character that is a piece becomes that piece; any other character becomes its
 *      bytes as byte tokens (byte fallback), so every byte string encodes and nothing is <unk>;
 *   3. repeatedly merge the adjacent pair whose concatenation is a piece with the highest score,
 *      the leftmost pair on ties, until no pair merges.
 * Two rules keep this fast and make it agree with the trainer: a merge never joins part of a
 * UTF-8 character with anything outside that character, and the text is cut, before merging, at
 * every byte pair that occurs inside no piece (for Llama 2: before each space that follows a
 * non-space), which cannot change the result. Each piece is merged through a binary heap:
 * O(n log n) in the length n of a cut-out segment, O(N) lookups over the whole text.
 * NUL is an ordinary byte: it encodes to <0x00> and decodes back, so texts carry explicit lengths.
 *
 * Decoding drops BOS/EOS, turns <unk> into " ⁇ " (SentencePiece's surface), byte tokens into their
 * raw byte, and drops the dummy-prefix space from the first piece, so that decode(encode(s)) == s
 * for every byte string s. tokenizer_decode_utf8 additionally replaces each byte that is not part of
 * a valid UTF-8 character by U+FFFD, as SentencePiece's decoder does.
 *
 * Training (tokenizer_train): byte-level BPE on a corpus. The corpus (with the dummy prefix) is cut
 * into chunks — a run of spaces with the non-space run that follows, a run of newlines (\n, \r) —
 * and identical chunks are counted once. Each step makes the most frequent adjacent pair a new
 * piece, scored below every earlier one, and re-runs the encoding merge loop on the chunks that
 * contain it, so that at every step the training segmentation is exactly what tokenizer_encode
 * gives with the vocabulary so far (and at the end, on the corpus). Pair counts are kept in a hash
 * map and a lazy max-heap and updated per touched chunk, never recounted.
 *
 * A loaded or trained Tokenizer is read-only: encode and decode may run on many threads at once.
 */
#ifndef RLHF_TOKENIZER_H
#define RLHF_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum {
    TOKENIZER_UNK = 0,
    TOKENIZER_BOS = 1,
    TOKENIZER_EOS = 2,
    TOKENIZER_BYTE0 = 3,         /* byte b is id b + 3 */
    TOKENIZER_FIRST_PIECE = 259, /* first merged piece */
};

/* A growable list of token ids. Zero-initialise; free with token_list_free. */
typedef struct {
    int32_t *ids;
    size_t n, cap;
} TokenList;

/* A growable byte string, always NUL-terminated after len bytes (it may also hold NULs). */
typedef struct {
    char *data;
    size_t len, cap;
} TextBuf;

typedef struct {
    int32_t vocab_size;
    int32_t max_piece_len; /* longest piece in bytes (the file's max_token_length) */
    /* Private. Pieces are stored back to back in `arena`; byte tokens keep their "<0xXX>" text. */
    char *arena;
    size_t arena_len, arena_cap;
    uint32_t *offset, *len;
    float *score;
    int32_t cap;           /* allocated entries in offset/len/score */
    int32_t *table;        /* open-addressing hash of pieces >= TOKENIZER_FIRST_PIECE, -1 empty */
    size_t table_cap;      /* power of two */
    uint8_t inner[256][32]; /* bit (a,b) set: bytes a,b occur next to each other inside a piece */
    uint8_t bytes[256];    /* bytes[b] == b: the raw text of byte token b + 3 */
} Tokenizer;

typedef struct {
    int64_t corpus_bytes;   /* input length, without the dummy prefix */
    int64_t chunks;         /* chunks in the corpus */
    int64_t unique_chunks;  /* distinct chunks, each processed once */
    int64_t corpus_tokens;  /* tokens of the corpus under the final vocabulary (no BOS/EOS) */
} TokenizerTrainStats;

void token_list_push(TokenList *l, int32_t id);
void token_list_free(TokenList *l);
void text_buf_append(TextBuf *b, const void *data, size_t n);
void text_buf_free(TextBuf *b);

/* Load `path`, which must hold exactly vocab_size tokens in the Llama 2 id layout (ids 3..258 the
 * byte tokens). A missing, truncated, longer or garbled file is ERR_INPUT naming the file and the
 * token. On failure *t is left empty (tokenizer_free is still safe). */
Err tokenizer_load(Tokenizer *t, const char *path, int32_t vocab_size);
/* Write `t` to `path` atomically: a temporary file in the same folder, fsync, rename. */
Err tokenizer_save(const Tokenizer *t, const char *path);
void tokenizer_free(Tokenizer *t);

/* Append the ids of text[0..len) to out, after BOS and before EOS when asked. Never fails;
 * len < 2 GiB. */
void tokenizer_encode(const Tokenizer *t, const char *text, size_t len, bool bos, bool eos,
                      TokenList *out);
/* Append the decoded bytes of ids[0..n) to out (see the top comment); ids must be < vocab_size. */
void tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, TextBuf *out);
/* As tokenizer_decode, but the appended text is valid UTF-8 (bad bytes become U+FFFD). */
void tokenizer_decode_utf8(const Tokenizer *t, const int32_t *ids, size_t n, TextBuf *out);
/* For streaming: the text that token `id` adds after token `prev` (prev < 0 at the start): empty for
 * BOS/EOS, the raw byte for a byte token, the piece without its leading space right after BOS or at
 * the start. Points into `t`; *len is set. */
const char *tokenizer_decode_piece(const Tokenizer *t, int32_t prev, int32_t id, size_t *len);
/* The raw bytes of a token (a byte token's single byte; specials as stored, e.g. "\n<s>\n"). */
const char *tokenizer_piece(const Tokenizer *t, int32_t id, size_t *len);
/* Id of the merged piece (id >= TOKENIZER_FIRST_PIECE) whose bytes are s[0..n), or -1. */
int32_t tokenizer_find(const Tokenizer *t, const char *s, size_t n);

/* Learn a vocabulary of exactly vocab_size tokens (>= 259) from corpus[0..len). ERR_INPUT when the
 * corpus has too few distinct adjacent pairs to reach vocab_size. stats may be NULL. */
Err tokenizer_train(Tokenizer *t, const char *corpus, size_t len, int32_t vocab_size,
                    TokenizerTrainStats *stats);

#endif
