#!/usr/bin/python3
"""Reference Llama 2 token ids for tests/test_tokenizer.c and tests/test_chat.c, from Meta's
SentencePiece model.

Writes tests/fixtures/tokenizer/llama2_sentencepiece.jsonl, one JSON object per line:
  {"text": str, "ids": [int, ...]}          sp.encode(text) (no BOS/EOS), and sp.decode(ids) == text
                                            unless "decoded" is given
  {"decode": [int, ...], "text": str}       sp.decode(ids): how byte tokens that are not valid UTF-8
                                            and control tokens come back
The table is committed so that CI needs no Python. Regenerate with Debian's python3-sentencepiece
(run /usr/bin/python3: the Debian module is not visible to other Python installations):

  /usr/bin/python3 tests/ref/gen_token_table.py ../shared/data/llama2c/tokenizer.model \
      > tests/fixtures/tokenizer/llama2_sentencepiece.jsonl
  /usr/bin/python3 tests/ref/gen_token_table.py ../shared/data/llama2c/tokenizer.model chat \
      > tests/fixtures/tokenizer/llama2_chat.jsonl

The chat table holds, per dialogue, {"system": str|null, "dialogue": [{role, content}...],
"ids": [...], "answer_spans": [[start, end], ...]}: "ids" exactly as Meta's llama/generation.py
chat_completion builds them (one encode call per user/answer pair,
f"{B_INST} {user.strip()} {E_INST} {answer.strip()} " with BOS and EOS, the system prompt folded
into the first user turn as B_SYS + system + E_SYS + user, and for a dialogue ending in a user
turn a last f"{B_INST} {user.strip()} {E_INST}" with BOS only); "answer_spans" the tokens of each
answer and its EOS when the prompt and the answer are encoded by separate calls
(f"{B_INST} {user} {E_INST}" with BOS, then f"{answer} " with EOS), which is how the loss mask is
placed. The script checks that the two ways give the same ids and stops if they do not.

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


B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"

U, A = "user", "assistant"
DIALOGUES = [
    (None, [(U, "What is the capital of France?"), (A, "Paris.")]),
    ("You are a helpful assistant.", [(U, "What is the capital of France?"), (A, "Paris is the capital of France.")]),
    (None, [(U, "Hi!"), (A, "Hello! How can I help?"), (U, "Tell me a joke."), (A, "Why did the llama cross the road?")]),
    ("Always answer as a pirate.", [(U, "  Hello there  "), (A, "\nArr, ahoy matey!\n"), (U, "What is 2+2?"),
                                    (A, "Arr, 'tis 4."), (U, "And 3+3?"), (A, "Six, says I.")]),
    ("Réponds en français.", [(U, "Bonjour, ça va ?"), (A, "Très bien, merci ! 😀")]),
    (None, [(U, "Write code:\n    x = 1\n"), (A, "```\nprint(x)\n```")]),
    # prompts for generation: they end with a user turn
    (None, [(U, "Who wrote Hamlet?")]),
    ("Only talk about cats.", [(U, "Hi"), (A, "Meow."), (U, "What about dogs?")]),
]


def chat_reference(sp, system, turns):
    """Meta's chat_completion, for a dialogue that may end with a user turn."""
    dialog = [{"role": r, "content": c} for r, c in turns]
    if system is not None:
        dialog = [{"role": dialog[0]["role"], "content": B_SYS + system + E_SYS + dialog[0]["content"]}] + dialog[1:]
    ids = []
    for prompt, answer in zip(dialog[::2], dialog[1::2]):
        ids += [sp.bos_id()] + sp.encode(f"{B_INST} {prompt['content'].strip()} {E_INST} {answer['content'].strip()} ") + [sp.eos_id()]
    if len(dialog) % 2 == 1:
        ids += [sp.bos_id()] + sp.encode(f"{B_INST} {dialog[-1]['content'].strip()} {E_INST}")
    return dialog, ids


def chat_split(sp, dialog):
    """The same dialogue with prompt and answer encoded separately; returns ids and answer spans."""
    ids, spans = [], []
    for i, turn in enumerate(dialog):
        if i % 2 == 0:
            ids += [sp.bos_id()] + sp.encode(f"{B_INST} {turn['content'].strip()} {E_INST}")
        else:
            start = len(ids)
            ids += sp.encode(f"{turn['content'].strip()} ") + [sp.eos_id()]
            spans.append([start, len(ids)])
    return ids, spans


def main_chat(sp):
    for system, turns in DIALOGUES:
        dialog, ids = chat_reference(sp, system, turns)
        split_ids, spans = chat_split(sp, dialog)
        if split_ids != ids:
            sys.exit(f"separate encode calls differ from Meta's for {turns!r}")
        rec = {"system": system, "dialogue": [{"role": r, "content": c} for r, c in turns], "ids": ids,
               "answer_spans": spans}
        print(json.dumps(rec, ensure_ascii=False))


def main():
    sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
    if len(sys.argv) > 2 and sys.argv[2] == "chat":
        main_chat(sp)
        return
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
