#!/usr/bin/python3
"""Reference Llama 2 token ids for tests/test_tokenizer.c, from Meta's SentencePiece model.

Writes tests/fixtures/tokenizer/llama2_sentencepiece.jsonl, one JSON object per line:
  {"text": str, "ids": [int, ...]}          sp.encode(text) (no BOS/EOS), and sp.decode(ids) == text
                                            unless "decoded" is given
  {"decode": [int, ...], "text": str}       sp.decode(ids): how byte tokens that are not valid UTF-8
                                            and control tokens come back
The table is committed so that CI needs no Python. Regenerate with Debian's python3-sentencepiece
(run /usr/bin/python3: the Debian module is not visible to other Python installations):

  /usr/bin/python3 tests/ref/gen_token_table.py ../shared/data/llama2c/tokenizer.model \
      > tests/fixtures/tokenizer/llama2_sentencepiece.jsonl

Strings are chosen to exercise what can go wrong in a reimplementation: the dummy-prefix space,
runs of spaces (whitespace-only pieces score -1e9 in this model), newlines and tabs (byte fallback),
digits (split one by one), accented Latin, CJK, emoji (byte fallback for rare characters), and the
chat template's own markers. U+2581 '▁' is left out on purpose: SentencePiece cannot tell it from
a space, llama2.c (and we) encode it as its three UTF-8 bytes; see docs/formats.md.
"""
import json
import sys

import sentencepiece as spm

TEXTS = [
    "Hello world",
    "hello world",
    "Hello, world!",
    "Once upon a time, there was a little girl named Lily.",
    " leading space",
    "  two leading spaces",
    "trailing space ",
    "many     inner      spaces",
    "   ",
    " ",
    "a",
    "Hello\nworld",
    "line one\n\nline two\n",
    "tab\tseparated\tvalues",
    "carriage\r\nreturn",
    "The year 2023 had 365 days and 12345 seconds.",
    "3.14159 is pi",
    "naïve café résumé über",
    "Ça va? Où est la bibliothèque?",
    "Привет, как дела?",
    "你好，世界！",
    "日本語のテキストです。",
    "안녕하세요",
    "مرحبا بالعالم",
    "emoji 😀 and 🚀 and 👍🏽",
    "🦙 llama",
    "a\u00a0non-breaking space",
    "zero\u200bwidth",
    "[INST] What is the capital of France? [/INST]",
    "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHi there! [/INST]",
    "Paris is the capital of France. ",
    "<s>literal markers</s> and <unk>",
    "<0x0A> is not a newline",
    "def f(x):\n    return x * 2\n",
    "https://example.com/path?query=1&b=2",
    "aaaaaaaaaaaaaaaaaaaaaaaa",
    "supercalifragilisticexpialidocious",
    "\u201cWe can\u2019t,\u201d she said \u2014 quietly.",
    "Lily and Ben were best friends. They liked to play in the park.",
    "x" * 3 + " " * 5 + "y",
    "MiXeD CaSe WoRdS",
    "I'm sure you're right; it's fine.",
]

# Byte tokens that are not valid UTF-8 on their own, control tokens and <unk>, mixed with text.
DECODES = [
    [29871, 30919, 226, 29871],          # ' ' '你' <0xDF> ' ': a lone lead byte
    [15043, 3, 2787],                    # 'Hello' <0x00> ' world': NUL comes back as a byte
    [1, 15043, 2, 15043],                # BOS and EOS in the middle are dropped
    [0, 15043],                          # <unk>
    [243, 162, 155, 131],                # <0xF0><0x9F><0x98><0x80>: 😀 from four byte tokens
    [243, 162, 155],                     # the same, cut short
    [195, 15043],                        # <0xC0> then ' Hello': 0xC0 is never valid UTF-8
]


def main():
    sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
    for text in TEXTS:
        ids = sp.encode(text)
        rec = {"text": text, "ids": ids}
        back = sp.decode(ids)
        if back != text:
            rec["decoded"] = back
        print(json.dumps(rec, ensure_ascii=False))
    for ids in DECODES:
        print(json.dumps({"decode": ids, "text": sp.decode(ids)}, ensure_ascii=False))


if __name__ == "__main__":
    main()
