"""One batch of prompts sampled from a policy, each sample scored three ways: the gold score (the
default world's, or any gold_score(prompt, response, ended) a caller gives), the reward model's
score, and the KL to the SFT policy. evaluate.py and the studies (experiments/) both measure
policies this way."""
import contextlib

import torch

from nanoinstruct import rlhf
from nanoinstruct.model import generate, last_token_scores, response_logits
from nanoinstruct.tokenizer import decode_response, encode_prompt


@torch.no_grad()
def sample_and_score(policy, sft, reward_model, enc, prompts, temperature, generator, gold_score, no_eot_score,
                     max_new_tokens=48, ref_temperature=1.0, ctx=contextlib.nullcontext()):
    """One sample from `policy` at `temperature` for each of the B prompts (repeats allowed) ->
    {"gold", "rm", "kl", "texts", "ended"}, each a list of B:
      gold   gold_score(prompt, text, ended): a response that never ends is judged so
      rm     r_theta(x, y) at the response's last token; no_eot_score for one that never ended
             (rlhf.penalize_unended, as PPO scores it)
      kl     log pi(y|x) - log pi_SFT(y|x) summed over the response tokens, pi at `temperature`
             and pi_SFT at ref_temperature: a one-sample estimate of KL(pi || pi_SFT), in nats
             (exactly 0 for SFT itself at ref_temperature, whose forward is then skipped)
      texts  the decoded responses, end-of-text stripped
    """
    block, eot = policy.config.block_size, enc.eot_token
    ids = [encode_prompt(enc, p)[-(block - max_new_tokens):] for p in prompts]
    with ctx:
        tokens, pmask, logprobs, mask = generate(policy, ids, max_new_tokens, eot, temperature, generator=generator)
        Tp = pmask.size(1)
        full = torch.cat([pmask, mask], 1)                                          # (B, Tp + Tn)
        rm = last_token_scores(reward_model, tokens, Tp + mask.sum(1) - 1, full)   # (B,)
        if policy is sft and temperature == ref_temperature:   # KL(pi_SFT || pi_SFT) = 0: no forward
            kl = torch.zeros(len(prompts))
        else:
            sft_logits = response_logits(sft, tokens, full, Tp, ref_temperature)    # (B, Tn, V)
            kl = torch.where(mask, logprobs - rlhf.logprobs_from_logits(sft_logits, tokens[:, Tp:]), 0.0).sum(1)
    ended = (tokens[:, Tp:] == eot).any(1)                                          # (B,)
    rm = rlhf.penalize_unended(rm.float(), ended, no_eot_score)
    out = {"gold": [], "rm": rm.tolist(), "kl": kl.tolist(), "texts": [], "ended": []}
    for p, t in zip(prompts, tokens[:, Tp:].tolist()):
        text, e = decode_response(enc, t)
        out["gold"].append(gold_score(p, text, ended=e))
        out["texts"].append(text)
        out["ended"].append(e)
    return out
