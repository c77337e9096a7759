"""Simulated labelers: the gold score plus a fixed judge's noise, and their agreement."""
import random

from .demonstrators import confused_response, demonstrate
from .gold import gold_score
from .prompts import FAMILY_WEIGHTS, sample_prompts

LABELER_SIGMA = 0.13   # calibrated on the default pipeline's SFT samples (package docstring)


def labeler_scores(prompt, responses, labeler, ended=None):
    """Gold scores plus the labeler's Gaussian noise. `labeler` is an int id (a fixed judge: its
    noise on a given (prompt, response) is always the same) or a random.Random (fresh noise)."""
    ended = [True] * len(responses) if ended is None else ended
    out = []
    for r, e in zip(responses, ended):
        rng = labeler if isinstance(labeler, random.Random) else random.Random(f"{labeler}\x00{prompt}\x00{r}\x00{e}")
        out.append(gold_score(prompt, r, e) + rng.gauss(0.0, LABELER_SIGMA))
    return out


def rank(prompt, responses, labeler, ended=None):
    """A simulated labeler's ranking of K responses: indices from best to worst."""
    s = labeler_scores(prompt, responses, labeler, ended)
    return sorted(range(len(responses)), key=lambda i: -s[i])


def calibration_set(seed=0, n_prompts=400, confused_rate=0.3, k_min=4, k_max=9):
    """A fixed synthetic set that resembles a small SFT policy's samples: [(prompt, [K responses])],
    K in [k_min, k_max]; each response is confused (`confused_response`, the wrong content in the
    right form) with probability confused_rate, else a demonstration (flaws and habits)."""
    rng = random.Random(f"calibration:{seed}")
    return [(p, [confused_response(p, rng) if rng.random() < confused_rate else demonstrate(p, rng)
                 for _ in range(rng.randint(k_min, k_max))])
            for p in sample_prompts(n_prompts, rng, weights=FAMILY_WEIGHTS)]


def labeler_agreement(groups, labelers=(0, 1), ended=None):
    """Fraction of pairs of distinct responses that two labelers order the same way.
    groups: [(prompt, [responses])]; ended: optional matching [[bool]]. Identical texts are
    skipped (nothing to prefer). The paper's inter-labeler agreement is 72.6 +- 1.5%."""
    agree = total = 0
    for g, (prompt, responses) in enumerate(groups):
        e = ended[g] if ended is not None else None
        pos = [{i: p for p, i in enumerate(rank(prompt, responses, lab, e))} for lab in labelers]
        for i in range(len(responses)):
            for j in range(i + 1, len(responses)):
                if responses[i] != responses[j]:
                    total += 1
                    agree += (pos[0][i] < pos[0][j]) == (pos[1][i] < pos[1][j])
    return agree / max(total, 1)
