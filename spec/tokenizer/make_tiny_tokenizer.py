#!/usr/bin/python3
"""Trains pipelines/models/tiny/tokenizer.model, the tokenizer of the bundled tiny demo model.

    /usr/bin/python3 spec/tokenizer/make_tiny_tokenizer.py

A SentencePiece BPE model shaped like Baichuan's: about 2,000 pieces, byte fallback (any text
encodes, including characters the corpus never had), digits split, identity normalization,
whitespace kept as written; <unk>=0, <s>=1, </s>=2, <pad>=3, and <reserved_102>/<reserved_103>
(the Baichuan-13B chat markers) as user-defined symbols. Trained on spec/tokenizer/corpus.txt and
corpus-more.txt (mixed Chinese and English written for sftc) with deterministic settings and relative paths,
so rerunning gives the same file.
"""
import os

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "pipelines", "models", "tiny")


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = []
    for name in ["corpus.txt", "corpus-more.txt"]:
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            lines += [line.rstrip("\n") for line in f if line.strip()]
    cwd = os.getcwd()
    os.chdir(OUT)
    try:
        with open("corpus.txt", "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        spm.SentencePieceTrainer.train(
            input="corpus.txt", model_prefix="tokenizer", model_type="bpe", vocab_size=2000,
            hard_vocab_limit=False, character_coverage=1.0, byte_fallback=True, split_digits=True,
            normalization_rule_name="identity", remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
            unk_id=0, bos_id=1, eos_id=2, pad_id=3, user_defined_symbols="<reserved_102>,<reserved_103>",
            num_threads=1, minloglevel=2, input_sentence_size=0, max_sentence_length=16384)
        os.remove("tokenizer.vocab")
        os.remove("corpus.txt")
    finally:
        os.chdir(cwd)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, "tokenizer.model"))
    print(f"tokenizer.model: {sp.get_piece_size()} pieces")


if __name__ == "__main__":
    main()
