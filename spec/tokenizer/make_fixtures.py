#!/usr/bin/python3
"""Reference fixtures for sftc's tokenizers.

Run with Debian's python (it has the `sentencepiece` module):

    /usr/bin/python3 spec/tokenizer/make_fixtures.py

It writes, under test/fixtures/tokenizers/:
  - small SentencePiece models trained here on a corpus built from spec/tokenizer/corpus.txt:
      bpe.model          BPE, byte fallback, split digits, identity normalizer, no whitespace folding,
                         user-defined symbols (some sharing prefixes)
      unigram.model      unigram, byte fallback, split digits, identity normalizer
      nfkc.model         unigram with spm_train's defaults (nmt_nfkc charsmap, no byte fallback)
      glm6.model         unigram shaped like ChatGLM-6B's ice_text.model (<n>, <|tab|>, <|blank_N|>,
                         [MASK]/[gMASK]/[sMASK]/<sop>/<eop>, pad id 3, byte fallback)
  - gpt2/: a small byte-level BPE (vocab.json, merges.txt, added_tokens.json,
           special_tokens_map.json, tokenizer_config.json) trained by the plain BPE trainer below
  - strings.json: the test strings
  - <name>.expected.json: for each string, the reference ids and decoded text
    (decoded is null when it equals the input string)

The reference ids come from the sentencepiece library itself (sp.encode / sp.decode), from the
ChatGLM-6B preprocessing written below after its tokenization_chatglm.py, and from an independent
implementation of the GPT-2 byte-level BPE encoder written below.
"""
import json
import os
import random
import sys
import unicodedata

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "test", "fixtures", "tokenizers")

EMOJI = ["👋", "😀", "🎉", "🚀", "❤️", "👍🏽", "👨‍👩‍👧", "🇨🇳", "🤖", "✅", "🍜", "🐼"]
RARE_CJK = ["𠀋", "𠂇", "𠃌", "𡈽", "𤭢", "𪚥", "鼗", "龘", "齉", "爨", "靐", "麤", "㸚", "䲜", "𬌗"]
NFKC_BITS = ["ＡＢＣ", "１２３", "ﬁle", "①②③", "㈱", "㎏", "ｶﾀｶﾅ", "e\u0301", "Å", "™", "½", "ｈｅｌｌｏ", "，", "！", "？", "（注）"]
WHITESPACE_BITS = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\u3000", "\u00a0", " \n ", "        "]
TOKEN_LIKE = ["<s>", "</s>", "<unk>", "<pad>", "<0x41>", "<eoh>", "<eom>", "<|Human|>", "<|MOSS|>:", "<n>",
              "<|tab|>", "[gMASK]", "<sop>", "sop", "▁", "<|endoftext|>", "<user>", "<user_name>"]
WORDS_EN = ["the", "model", "token", "train", "data", "learning", "fine-tuning", "GPU", "LoRA", "it's", "we'll",
            "they've", "I'm", "you'd", "don't", "Hello", "WORLD", "chat", "ChatGLM2-6B", "Baichuan-13B", "MOSS"]


def read_corpus():
    with open(os.path.join(HERE, "corpus.txt"), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def training_corpus(lines, rng):
    """Corpus lines plus recombinations, numbers and emoji so merges and pieces see them."""
    out = list(lines)
    for _ in range(4000):
        kind = rng.randrange(5)
        if kind == 0:
            out.append(rng.choice(lines) + rng.choice(lines))
        elif kind == 1:
            out.append(f"{rng.randrange(10**rng.randrange(1, 8))} {rng.choice(lines)} {rng.choice(EMOJI)}")
        elif kind == 2:
            out.append(" ".join(rng.choice(WORDS_EN) for _ in range(rng.randrange(3, 12))))
        elif kind == 3:
            line = rng.choice(lines)
            cut = rng.randrange(len(line) + 1)
            out.append(line[:cut] + rng.choice(EMOJI) + line[cut:])
        else:
            out.append("    " + rng.choice(lines))
    return out


def test_strings(lines, rng, count):
    """Mixed strings: Chinese, English, digits, emoji, whitespace runs, tabs, newlines, code, rare CJK."""
    def piece():
        kind = rng.randrange(10)
        if kind == 0:
            line = rng.choice(lines)
            a = rng.randrange(len(line) + 1)
            return line[a:a + rng.randrange(1, 40)]
        if kind == 1:
            return str(rng.randrange(10 ** rng.randrange(1, 12)))
        if kind == 2:
            return rng.choice(EMOJI)
        if kind == 3:
            return rng.choice(WHITESPACE_BITS)
        if kind == 4:
            return rng.choice(RARE_CJK)
        if kind == 5:
            return rng.choice(NFKC_BITS)
        if kind == 6:
            return rng.choice(TOKEN_LIKE)
        if kind == 7:
            return rng.choice(WORDS_EN)
        if kind == 8:
            return rng.choice(lines)
        return rng.choice(["(", ")", "{", "}", ":", ";", "'s", "'ll", "...", "——", "“", "”", "#", "=", "->", "'"])

    fixed = ["", " ", "  ", "\n", "\t", "你好", "晚上睡不着怎么办", "Hello world", "  leading and trailing  ",
             "a\n\nb", "x\ty\t\tz", "1234567890", "𠀋𠀋", "𠀋a𠂇", "👋" * 3, "<s>hi</s>", "<0x41>",
             "def main():\n    print('hello world')\t# greeting", "[Round 1]\n\n问：你好\n\n答：",
             " " * 81 + "x", " " * 85, "e\u0301\u0301", "ＡＢＣ１２３ ﬁ", "<|Human|>: 你好<eoh>\n<|MOSS|>:",
             "   \t  \n  ", "I'm sure it's fine, we'll see.", "'s'S 'LL"]
    out = list(fixed)
    while len(out) < count:
        out.append("".join(piece() for _ in range(rng.randrange(1, 9))))
    return out


def train(corpus_file, name, **options):
    """Trains in OUT with relative paths, so the model (which records them) is the same everywhere."""
    cwd = os.getcwd()
    os.chdir(OUT)
    try:
        spm.SentencePieceTrainer.train(input=corpus_file, model_prefix=name, num_threads=1, minloglevel=2,
                                       input_sentence_size=0, **options)
        os.remove(name + ".vocab")
    finally:
        os.chdir(cwd)
    return os.path.join(OUT, name + ".model")


# ---- ChatGLM-6B preprocessing, after tokenization_chatglm.py (SPTokenizer) ----

MAX_BLANK = 80


def glm6_preprocess(text):
    text = text.replace("\n", "<n>")
    text = text.replace("\t", "<|tab|>")
    for n in range(MAX_BLANK, 1, -1):
        text = text.replace(" " * n, f"<|blank_{n}|>")
    return text


def glm6_postprocess(text):
    text = text.replace("<n>", "\n").replace("<|tab|>", "\t")
    for n in range(2, MAX_BLANK + 1):
        text = text.replace(f"<|blank_{n}|>", " " * n)
    return text


# ---- GPT-2 byte-level BPE, written from the algorithm's description ----

WHITE_SPACE = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]


def is_letter(c):
    return unicodedata.category(c).startswith("L")


def is_number(c):
    return unicodedata.category(c).startswith("N")


def is_other(c):
    return not (c in WHITE_SPACE or is_letter(c) or is_number(c))


def pretokenize(text):
    """Scanner equivalent to 's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"""
    out, i, n = [], 0, len(text)

    def run(j, pred):
        while j < n and pred(text[j]):
            j += 1
        return j

    while i < n:
        c = text[i]
        hit = next((k for k in CONTRACTIONS if text.startswith(k, i)), None)
        if hit:
            out.append(hit)
            i += len(hit)
            continue
        # ' ?X+': an optional single space, then a run of one class
        start = i + 1 if c == " " and i + 1 < n else i
        pred = next((p for p in (is_letter, is_number, is_other) if p(text[start])), None)
        if pred:
            j = run(start, pred)
            out.append(text[i:j])
            i = j
            continue
        # whitespace: a run not followed by non-space, else the run minus its last character
        j = run(i, lambda ch: ch in WHITE_SPACE)
        if j < n and j - 1 > i:
            j -= 1
        out.append(text[i:j])
        i = j
    return out


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {v: k for k, v in BYTE_ENCODER.items()}


def to_byte_symbols(word):
    return "".join(BYTE_ENCODER[b] for b in word.encode("utf-8"))


def train_byte_bpe(lines, merges_wanted):
    counts = {}
    for line in lines:
        for word in pretokenize(line):
            sym = tuple(to_byte_symbols(word))
            counts[sym] = counts.get(sym, 0) + 1
    merges = []
    words = dict(counts)
    for _ in range(merges_wanted):
        pairs = {}
        for word, c in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        merged = {}
        for word, c in words.items():
            merged_word = merge_word(word, best)
            merged[merged_word] = merged.get(merged_word, 0) + c
        words = merged
    return merges


def merge_word(word, pair):
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


class ByteBpe:
    def __init__(self, vocab, merges, added):
        self.vocab = vocab
        self.ranks = {pair: r for r, pair in enumerate(merges)}
        self.added = added  # content -> id
        self.decoder = {i: t for t, i in vocab.items()}
        self.added_decoder = {i: t for t, i in added.items()}
        self.unk = vocab["<|endoftext|>"]

    def bpe(self, symbols):
        word = list(symbols)
        while len(word) > 1:
            ranked = [(self.ranks[pair], pair) for pair in zip(word, word[1:]) if pair in self.ranks]
            if not ranked:
                break
            word = list(merge_word(word, min(ranked)[1]))
        return word

    def split_added(self, text):
        """Leftmost, then longest, match of the added tokens and the special tokens."""
        parts, i, start = [], 0, 0
        no_split = set(self.added) | {"<|endoftext|>"}
        longest = max(len(t) for t in no_split)
        while i < len(text):
            match = None
            for length in range(min(longest, len(text) - i), 0, -1):
                if text[i:i + length] in no_split:
                    match = text[i:i + length]
                    break
            if match is None:
                i += 1
                continue
            if start < i:
                parts.append((False, text[start:i]))
            parts.append((True, match))
            i += len(match)
            start = i
        if start < len(text):
            parts.append((False, text[start:]))
        return parts

    def encode(self, text):
        ids = []
        for is_added, part in self.split_added(text):
            if is_added:
                ids.append(self.added.get(part, self.vocab.get(part)))
                continue
            for word in pretokenize(part):
                ids.extend(self.vocab.get(t, self.unk) for t in self.bpe(to_byte_symbols(word)))
        return ids

    def decode(self, ids):
        text, pending = "", bytearray()
        for i in ids:
            if i in self.added_decoder:
                text += pending.decode("utf-8", errors="replace") + self.added_decoder[i]
                pending = bytearray()
            else:
                pending.extend(BYTE_DECODER[c] for c in self.decoder[i])
        return text + pending.decode("utf-8", errors="replace")


def build_gpt2(lines, strings):
    directory = os.path.join(OUT, "gpt2")
    os.makedirs(directory, exist_ok=True)
    merges = train_byte_bpe(lines, 1500)
    vocab = {}
    for b in sorted(BYTE_ENCODER):
        vocab[BYTE_ENCODER[b]] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<|endoftext|>"] = len(vocab)
    # MOSS-style added tokens: whitespace runs (ids counting down as in MOSS), then the specials.
    added = {}
    base = len(vocab)
    for n in range(8, 1, -1):
        added[" " * n] = base + 8 - n
    for n in range(4, 1, -1):
        added["\t" * n] = base + 7 + 4 - n
    for name in ["<eoh>", "<eom>", "<eot>", "<eoc>", "<eor>"]:
        added[name] = base + len(added)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    with open(os.path.join(directory, "added_tokens.json"), "w", encoding="utf-8") as f:
        json.dump(added, f, ensure_ascii=False)
    with open(os.path.join(directory, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump({"additional_special_tokens": ["<eoh>", "<eom>", "<eot>", "<eoc>", "<eor>"],
                   "bos_token": "<|endoftext|>", "eos_token": "<eom>", "unk_token": "<|endoftext|>"}, f)
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"add_bos_token": False, "add_prefix_space": False, "model_max_length": 2048,
                   "tokenizer_class": "MossTokenizer"}, f)
    tok = ByteBpe(vocab, merges, added)
    ids = [tok.encode(s) for s in strings]
    return expected(strings, ids, [tok.decode(x) for x in ids])


def expected(strings, ids, decoded):
    return {"ids": ids, "decoded": [None if d == s else d for s, d in zip(strings, decoded)]}


def random_id_sequences(sp, rng, count):
    """Id sequences no encoder would produce: byte pieces that break characters, leading "▁" pieces,
    control and unknown pieces in between, to check decoding on its own."""
    size = sp.get_piece_size()
    bytes_ = [i for i in range(size) if sp.is_byte(i)]
    marks = [i for i in range(size) if sp.id_to_piece(i).startswith("\u2581")]
    specials = [i for i in range(size) if sp.is_control(i) or sp.is_unknown(i)]
    pools = [bytes_ or specials, marks, specials, list(range(size))]
    return [[rng.choice(rng.choice(pools)) for _ in range(rng.randrange(1, 13))] for _ in range(count)]


def write_json(name, value):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(20230625)
    lines = read_corpus()
    corpus = training_corpus(lines, rng)
    strings = test_strings(lines, rng, 1200)
    corpus_file = "training-corpus.txt"
    with open(os.path.join(OUT, corpus_file), "w", encoding="utf-8") as f:
        f.write("\n".join(corpus) + "\n")
    common = dict(vocab_size=1500, hard_vocab_limit=False, character_coverage=0.995)
    models = {
        "bpe": train(corpus_file, "bpe", model_type="bpe", byte_fallback=True, split_digits=True,
                     normalization_rule_name="identity", remove_extra_whitespaces=False,
                     user_defined_symbols="<user>,<user_name>,<|Human|>,<|Human|>:", **common),
        "unigram": train(corpus_file, "unigram", model_type="unigram", byte_fallback=True, split_digits=True,
                         normalization_rule_name="identity", user_defined_symbols="<user>,<user_name>", **common),
        "nfkc": train(corpus_file, "nfkc", model_type="unigram", vocab_size=1500, hard_vocab_limit=False),
        "glm6": train(corpus_file, "glm6", model_type="unigram", byte_fallback=True, pad_id=3, unk_id=0, bos_id=1,
                      eos_id=2, normalization_rule_name="identity", remove_extra_whitespaces=False,
                      control_symbols="[MASK],[gMASK],[sMASK],<sop>,<eop>",
                      user_defined_symbols=",".join(["<n>", "<|tab|>"] + [f"<|blank_{n}|>" for n in range(2, MAX_BLANK + 1)]),
                      **common),
    }
    os.remove(os.path.join(OUT, corpus_file))
    write_json("strings.json", strings)
    for name, path in models.items():
        sp = spm.SentencePieceProcessor(model_file=path)
        if name == "glm6":
            ids = [sp.encode(glm6_preprocess(s)) for s in strings]
            decoded = [glm6_postprocess(sp.decode(x)) for x in ids]
        else:
            ids = [sp.encode(s) for s in strings]
            decoded = [sp.decode(x) for x in ids]
        result = expected(strings, ids, decoded)
        result["random_ids"] = random_id_sequences(sp, rng, 300)
        result["random_decoded"] = [sp.decode(x) for x in result["random_ids"]]
        if name == "glm6":
            result["random_decoded"] = [glm6_postprocess(x) for x in result["random_decoded"]]
        write_json(f"{name}.expected.json", result)
        print(f"{name}: {sp.get_piece_size()} pieces, {sum(map(len, ids))} ids", file=sys.stderr)
    write_json("gpt2.expected.json", build_gpt2(corpus, strings))


if __name__ == "__main__":
    main()
