#!/usr/bin/python3
"""Reference generations of the tiny fixture models: Hugging Face `generate` greedy search and
beam search (transformers 4.2x-4.3x semantics), on the forward passes of make_forward_goldens.py.

Run with Debian's PyTorch:
    /usr/bin/python3 spec/golden/make_generation.py

Writes test/fixtures/generation/generation.json: for every family, prompts (token ids) and, per
case, the generated ids (greedy: the new tokens, EOS included; beam: the returned hypotheses,
prompt included, with their scores, and `sequence`, the output row of `generate`: the hypothesis
followed by eos_token_id[0] when it ended at EOS, as BeamSearchScorer.finalize writes it).

The model runs in float64 without a KV cache (the whole sequence every step); its last-position
logits are rounded to float32, as a float32 model hands them to `generate`. The processors run
on float32 scores (make_decoding.py's implementations). Beam search's log-softmax is accumulated
in float64 and rounded to float32 (transformers computes it in float32; the two differ by at most
an ulp, which sftc's logSoftmax32 fixes to the float64 choice). The beam step is written as
transformers' `beam_search` does it: scores (num_beams, vocab) viewed as one row, top
2 * num_beams candidates, BeamSearchScorer's selection and BeamHypotheses (make_decoding.Hyps).

Cases use the family's EOS id, or, to exercise stopping on EOS (a random tiny model rarely emits
its own), `eos_token_id` set to a token the model is known to produce, as `generate` allows.
"""
import json
import os

import torch

from make_decoding import Hyps, process, settings
from make_forward_goldens import FIXTURES, FORWARDS, load_state

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "test", "fixtures", "generation", "generation.json")


def prompts_for(family, config):
    """Two prompts of random ids (5 and 9 tokens); ChatGLM-6B's end with [gMASK] <sop>."""
    gen = torch.Generator().manual_seed(1000 + sum(map(ord, family)))
    prompts = [torch.randint(5, 400, (n,), generator=gen).tolist() for n in (5, 9)]
    if family == "chatglm":
        prompts = [p + [config["gmask_token_id"], config["bos_token_id"]] for p in prompts]
    return prompts


def last_logits(forward, state, config, sequences):
    """float32 logits of the last position of each sequence (all of one length), (N, vocab)."""
    with torch.no_grad():
        return forward(state, config, torch.tensor(sequences))[:, -1].float()


def greedy(forward, state, config, prompt, max_new_tokens, eos, penalty):
    seq = list(prompt)
    for _ in range(max_new_tokens):
        scores = process(torch.tensor([seq]), last_logits(forward, state, config, [seq]), settings(repetitionPenalty=penalty))[0]
        token = int(torch.argmax(scores))
        seq.append(token)
        if token in eos:
            break
    return seq[len(prompt):]


def beam_search(forward, state, config, prompt, num_beams, length_penalty, early_stopping, num_return, max_new_tokens, eos):
    input_ids = torch.tensor([prompt] * num_beams)
    max_length = len(prompt) + max_new_tokens
    beam_scores = torch.zeros(num_beams)
    beam_scores[1:] = -1e9  # only the first beam is live at the start
    hyps = Hyps(num_beams, length_penalty, early_stopping)
    done = False
    while input_ids.shape[1] < max_length:
        cur_len = input_ids.shape[1]
        logits = last_logits(forward, state, config, input_ids.tolist())
        logprobs = logits.double().log_softmax(-1).float()
        scores = process(input_ids, logprobs, settings()) + beam_scores[:, None]
        vocab = scores.shape[-1]
        top, idx = torch.topk(scores.view(-1), 2 * num_beams, largest=True, sorted=True)
        next_scores, next_beams, next_tokens = [], [], []
        for rank, (score, i) in enumerate(zip(top.tolist(), idx.tolist())):
            beam, token = i // vocab, i % vocab
            if token in eos:
                if rank < num_beams:
                    hyps.add(input_ids[beam].tolist(), score)
            else:
                next_scores.append(score)
                next_beams.append(beam)
                next_tokens.append(token)
            if len(next_tokens) == num_beams:
                break
        done = hyps.is_done(top[0].item(), cur_len)
        input_ids = torch.cat([input_ids[next_beams], torch.tensor(next_tokens)[:, None]], dim=-1)
        beam_scores = torch.tensor(next_scores)
        if done:
            break
    if not done:
        for beam in range(num_beams):
            hyps.add(input_ids[beam].tolist(), beam_scores[beam].item())
    ranked = sorted(hyps.beams, key=lambda x: x[0])
    # finalize: a hypothesis shorter than max_length ended at EOS, which is written after it
    finalized = lambda h: h + [eos[0]] if len(h) < max_length else h
    return [{"tokens": h, "score": s, "sequence": finalized(h)} for s, h in reversed(ranked[-num_return:])]


def family_cases(family, forward, state, config):
    eos = config["eos_token_id"]
    eos = eos if isinstance(eos, list) else [eos]
    cases = []
    for prompt in prompts_for(family, config):
        plain = greedy(forward, state, config, prompt, 10, eos, 1.0)
        # a token the model emits: stopping on it must end generation right there
        emitted = plain[3]
        for name, penalty, stop in (("greedy", 1.0, eos), ("greedy_penalty", 1.3, eos), ("greedy_eos", 1.0, [emitted])):
            tokens = plain if name == "greedy" else greedy(forward, state, config, prompt, 10, stop, penalty)
            cases.append({"kind": "greedy", "name": name, "prompt": prompt, "max_new_tokens": 10, "repetition_penalty": penalty, "eos": stop, "tokens": tokens})
        for name, length_penalty, early, stop in (("beam", 1.0, False, eos), ("beam_lp2_early_eos", 2.0, True, [plain[1]])):
            beams = beam_search(forward, state, config, prompt, 3, length_penalty, early, 2, 6, stop)
            cases.append({
                "kind": "beam", "name": name, "prompt": prompt, "max_new_tokens": 6, "num_beams": 3, "length_penalty": length_penalty,
                "early_stopping": early, "num_return_sequences": 2, "eos": stop, "beams": beams,
            })
    return cases


def main():
    out = {}
    for family, forward in FORWARDS.items():
        directory = os.path.join(FIXTURES, family)
        with open(os.path.join(directory, "config.json")) as f:
            config = json.load(f)
        state = load_state(directory)
        out[family] = family_cases(family, forward, state, config)
        print(f"{family}: {len(out[family])} cases")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
