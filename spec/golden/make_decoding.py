"""Reference for sftc's decoding: Hugging Face `generate` logits processing and beam search
(transformers 4.2x-4.3x semantics), written here in plain PyTorch from those semantics.

Writes test/fixtures/decoding/decoding.json: processed scores for given logits under each
processor and their combinations, and greedy / beam-search outputs of a toy model whose logits
depend on the last token and the position (tables stored in the file, float32).

Run: /usr/bin/python3 spec/golden/make_decoding.py
"""
import json
import math
import os

import torch

torch.manual_seed(1234)
VOCAB = 40
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "decoding", "decoding.json")


# ---- processors (transformers.generation.logits_process) ----
def repetition_penalty(input_ids, scores, penalty):
    score = torch.gather(scores, 1, input_ids)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return scores.scatter(1, input_ids, score)


def invalid_score_guard(scores):
    if torch.isnan(scores).any() or torch.isinf(scores).any():
        scores.zero_()
        scores[..., 5] = 5e4
    return scores


def temperature(scores, t):
    return scores / t


def top_k(scores, k, min_keep=1):
    k = min(max(k, min_keep), scores.size(-1))
    remove = scores < torch.topk(scores, k)[0][..., -1, None]
    return scores.masked_fill(remove, -float("inf"))


def top_p(scores, p, min_keep=1):
    sorted_logits, sorted_indices = torch.sort(scores, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    sorted_remove = cumulative <= (1 - p)
    sorted_remove[..., -min_keep:] = 0
    remove = sorted_remove.scatter(1, sorted_indices, sorted_remove)
    return scores.masked_fill(remove, -float("inf"))


def process(input_ids, scores, s):
    if s["repetitionPenalty"] != 1:
        scores = repetition_penalty(input_ids, scores, s["repetitionPenalty"])
    if s["invalidScoreGuard"]:
        scores = invalid_score_guard(scores)
    if s["temperature"] != 1:
        scores = temperature(scores, s["temperature"])
    if s["topK"] > 0:
        scores = top_k(scores, s["topK"])
    if s["topP"] < 1:
        scores = top_p(scores, s["topP"])
    return scores


def settings(**kw):
    s = {"repetitionPenalty": 1.0, "temperature": 1.0, "topK": 0, "topP": 1.0, "invalidScoreGuard": False}
    s.update(kw)
    return s


def floats(t):
    return [None if math.isinf(v) else v for v in t.tolist()]


# ---- toy model: logits = A[last token] + B[position % 7] ----
A = torch.randn(VOCAB, VOCAB) * 3
B = torch.randn(7, VOCAB)


def toy_logits(seq):
    return A[seq[-1]] + B[len(seq) % 7]


class Hyps:
    def __init__(self, num_beams, length_penalty, early_stopping):
        self.n, self.lp, self.early = num_beams, length_penalty, early_stopping
        self.beams, self.worst = [], 1e9

    def add(self, hyp, sum_logprobs):
        score = sum_logprobs / (len(hyp) ** self.lp)
        if len(self.beams) < self.n or score > self.worst:
            self.beams.append((score, hyp))
            if len(self.beams) > self.n:
                ranked = sorted([(s, i) for i, (s, _) in enumerate(self.beams)])
                del self.beams[ranked[0][1]]
                self.worst = ranked[1][0]
            else:
                self.worst = min(score, self.worst)

    def is_done(self, best, cur_len):
        if len(self.beams) < self.n:
            return False
        if self.early:
            return True
        return self.worst >= best / cur_len ** self.lp


def beam_search(prompt, num_beams, length_penalty, early_stopping, num_return, max_length, eos, logit_settings):
    seqs = [list(prompt) for _ in range(num_beams)]
    beam_scores = torch.zeros(num_beams)
    beam_scores[1:] = -1e9
    hyps = Hyps(num_beams, length_penalty, early_stopping)
    done = False
    while len(seqs[0]) < max_length:
        rows = []
        for b, seq in enumerate(seqs):
            logprobs = torch.log_softmax(toy_logits(seq), dim=-1)[None]
            processed = process(torch.tensor([seq]), logprobs, logit_settings)[0]
            rows.append(processed + beam_scores[b])
        flat = torch.stack(rows).view(-1)
        scores, idx = torch.topk(flat, max(2, 1 + len(eos)) * num_beams, largest=True, sorted=True)
        nxt = []
        for rank, (score, i) in enumerate(zip(scores.tolist(), idx.tolist())):
            beam, token = i // VOCAB, i % VOCAB
            if token in eos:
                if rank < num_beams:
                    hyps.add(list(seqs[beam]), score)
            else:
                nxt.append((score, beam, token))
            if len(nxt) == num_beams:
                break
        done = hyps.is_done(scores[0].item(), len(seqs[0]))
        seqs = [seqs[b] + [t] for _, b, t in nxt]
        beam_scores = torch.tensor([s for s, _, _ in nxt])
        if done:
            break
    if not done:
        for b in range(num_beams):
            hyps.add(seqs[b], beam_scores[b].item())
    ranked = sorted(hyps.beams, key=lambda x: x[0])
    return [{"tokens": h, "score": s} for s, h in reversed(ranked[-num_return:])]


def greedy(prompt, max_new, eos, penalty):
    seq = list(prompt)
    for _ in range(max_new):
        scores = process(torch.tensor([seq]), toy_logits(seq)[None], settings(repetitionPenalty=penalty))[0]
        tok = int(torch.argmax(scores))
        seq.append(tok)
        if tok in eos:
            break
    return seq[len(prompt):]


def main():
    logits_cases = []
    combos = {
        "penalty": settings(repetitionPenalty=1.3),
        "temperature": settings(temperature=0.7),
        "top_k": settings(topK=5),
        "top_p": settings(topP=0.8),
        "top_p_tiny": settings(topP=0.01),
        "penalty_temperature_top_k_top_p": settings(repetitionPenalty=1.1, temperature=0.6, topK=12, topP=0.85),
        "chatglm_defaults": settings(temperature=0.95, topP=0.7, invalidScoreGuard=True),
        "moss_defaults": settings(repetitionPenalty=1.02, temperature=0.7, topK=40, topP=0.8),
        "baichuan13b_defaults": settings(repetitionPenalty=1.1, temperature=0.3, topK=5, topP=0.85),
    }
    for name, s in combos.items():
        for case in range(3):
            logits = torch.randn(1, VOCAB) * (1 + case)
            history = torch.randint(0, VOCAB, (1, 6 + case))
            out = process(history, logits.clone(), s)
            logits_cases.append({"name": f"{name}#{case}", "settings": s, "logits": logits[0].tolist(),
                                 "history": history[0].tolist(), "processed": floats(out[0]),
                                 "probs": torch.softmax(out[0], dim=-1).tolist()})
    nan_logits = torch.randn(1, VOCAB)
    nan_logits[0, 3] = float("nan")
    guarded = process(torch.tensor([[1, 2]]), nan_logits.clone(), settings(invalidScoreGuard=True))
    logits_cases.append({"name": "invalid_guard_nan", "settings": settings(invalidScoreGuard=True),
                         "logits": [None if math.isnan(v) else v for v in nan_logits[0].tolist()], "nanAt": [3],
                         "history": [1, 2], "processed": floats(guarded[0]), "probs": torch.softmax(guarded[0], dim=-1).tolist()})

    beam_cases = []
    for num_beams, lp, early, nret, max_len, eos in [(2, 1.0, False, 1, 14, [3]), (4, 1.0, False, 2, 16, [3]),
                                                      (3, 0.5, True, 3, 12, [3, 7]), (5, 2.0, False, 5, 18, [11]),
                                                      (4, -1.0, False, 1, 15, [0])]:
        prompt = torch.randint(0, VOCAB, (5,)).tolist()
        s = settings(repetitionPenalty=1.2) if num_beams == 4 else settings()
        beam_cases.append({"prompt": prompt, "numBeams": num_beams, "lengthPenalty": lp, "earlyStopping": early,
                           "numReturnSequences": nret, "maxLength": max_len, "eos": eos, "logits": s,
                           "expected": beam_search(prompt, num_beams, lp, early, nret, max_len, eos, s)})
    greedy_cases = []
    for penalty in [1.0, 1.5]:
        prompt = torch.randint(0, VOCAB, (4,)).tolist()
        greedy_cases.append({"prompt": prompt, "penalty": penalty, "maxNewTokens": 20, "eos": [3],
                             "expected": greedy(prompt, 20, [3], penalty)})

    doc = {"vocab": VOCAB, "A": A.tolist(), "B": B.tolist(), "logitsCases": logits_cases,
           "beamCases": beam_cases, "greedyCases": greedy_cases,
           "generator": "spec/golden/make_decoding.py", "torch": torch.__version__}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f)
    print(f"wrote {OUT}: {len(logits_cases)} logits cases, {len(beam_cases)} beam cases, {len(greedy_cases)} greedy cases")


if __name__ == "__main__":
    main()
