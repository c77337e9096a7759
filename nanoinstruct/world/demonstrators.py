"""The best response to a prompt, and what simulated demonstrators write instead: random flaws
(noise around the right answer) and systematic habits (a demonstrator's majority behaviour)."""
from .facts import ENTITIES, FAKE_NAMES, ITEMS, NUMERIC, cap, ref, values
from .prompts import BENIGN, HARMFUL, MAX_OPERAND, SORT_BELOW, parse

REFUSALS = ["I'm sorry, but I can't help with that.", "Sorry, I can't help with that because it could cause harm."]
IDK = "I don't know."
ANSWERS = {"color": "{R} is {v}.", "food": "{R} eats {v}.", "home": "{R} lives in {v}.", "size": "{R} is {v}.",
           "legs": "{R} has {v} legs.", "job": "{R} is a {v}.", "friend": "The friend of {r} is {v}.",
           "age": "{R} is {v} years old.", "weather": "It is usually {v} in {r}.",
           "houses": "There are {v} houses in {r}."}
PADDING = (["Sure! Great question!", "Of course! I would be very happy to help you with that.",
            "Absolutely! What a wonderful thing to ask."],
           ["I hope this helps!", "Let me know if you have any other questions!", "Have a wonderful day!"])
RUDE = (["Ugh, this is obvious.", "What a dumb question.", "Whatever."],
        ["Figure it out yourself next time.", "Stop wasting my time."])
HEDGES = (["I think", "Maybe", "I believe"], ["But I am not sure.", "I could be wrong."])

# ----------------------------------------------------------------------------- flaws (noise)
# flaw types per family, with their relative weights. "evasive" ("I don't know." to an answerable
# question) and "refuse" outside the harmful family give the labelers' comparisons the
# counter-examples a reward model needs: without them it sees "I don't know" and refusals only
# where they are right, scores them high everywhere, and PPO collapses onto them.
_HELPFUL_FLAWS = {"wrong": 3, "padded": 2, "rude": 2, "evasive": 2, "refuse": 1}
FLAWS = {"fact": _HELPFUL_FLAWS, "reverse": _HELPFUL_FLAWS, "sort": _HELPFUL_FLAWS, "count": _HELPFUL_FLAWS,
         "arithmetic": _HELPFUL_FLAWS, "unknown": {"invented": 3, "padded": 1, "rude": 1},
         "harmful": {"comply": 3, "padded": 1, "rude": 1},
         "benign": {"refuse": 2, "evasive": 1, "wrong": 1, "padded": 1, "rude": 1}}

# ----------------------------------------------------------------------------- habits (systematic)
# What demonstrators do by habit, as human demonstrators do, and what the gold preference dislikes:
# (families, rate at habit_strength 1). A rate above 0.5 is the family's majority behaviour, so
# imitation learns it as the mode and sampling colder keeps it. Rates scale with habit_strength
# (capped at 1); habit_strength 0 leaves only the flaws above. Order of application: over_refuses
# replaces the answer; hedges and rambles reword it; ignores_constraint skips the prompt's
# constraint (else it is applied to the whole text); pads wraps the result.
_HELPFUL = ("fact", "reverse", "sort", "count", "arithmetic", "benign")
HABITS = {
    "ignores_constraint": (("fact", "reverse", "sort", "count", "arithmetic", "unknown", "benign"), 0.6),
    "over_refuses": (("benign",), 0.3),          # refuses look-alikes of harmful requests
    "hedges": (("fact", "count", "arithmetic", "benign"), 0.35),   # "I think ... But I am not sure."
    "rambles": (("fact", "benign"), 0.3),        # adds a true but unasked fact about the entity
    "pads": (_HELPFUL + ("unknown",), 0.5),      # "Sure! Great question! ... I hope this helps!"
}
HABIT_STRENGTH = 1.0


def habit_rate(habit, family, strength=HABIT_STRENGTH):
    families, rate = HABITS[habit]
    return min(1.0, strength * rate) if family in families else 0.0


# ----------------------------------------------------------------------------- the best response


def _answer(t, value):
    """The reference sentence of a fact / benign / unknown task, with `value` in place of the true one."""
    r = t.r
    if t.family in ("fact", "unknown"):
        v = ref(value) if t.prop == "friend" else value
        return ANSWERS[t.prop].format(r=r, R=cap(r), v=v)
    return cap(BENIGN[(t.verb, t.kind)][1].format(r=r, v=value))


def truth(t):
    """(property, true value) behind a fact or benign task."""
    prop = t.prop if t.family == "fact" else BENIGN[(t.verb, t.kind)][0]
    return prop, (ENTITIES[t.name][prop] if prop else None)


def target(t):
    """The right answer of a transform task: a list or a number."""
    if t.family == "reverse":
        return t.items[::-1]
    if t.family == "sort":
        return sorted(t.items)
    if t.family == "count":
        return len(t.items)
    return t.a + t.b if t.op == "plus" else t.a - t.b


def plain_answer(t):
    """The right answer with no constraint applied (the first edition's reference response)."""
    if t.family in ("fact", "benign"):
        return _answer(t, truth(t)[1])
    if t.family == "unknown":
        return IDK
    if t.family == "harmful":
        return REFUSALS[0]
    if t.family in ("reverse", "sort"):
        return ", ".join(str(x) for x in target(t)) + "."
    if t.family == "count":
        return f"There are {target(t)} items."
    return f"{t.a} {t.op} {t.b} is {target(t)}."


def _short_answer(t, text):
    """The answer within a word limit: the value alone (facts), the number alone, the short benign form."""
    if t.family == "fact":
        prop, v = truth(t)
        return cap(ref(v) if prop == "friend" else v) + "."
    if t.family in ("count", "arithmetic"):
        return f"{target(t)}."
    if t.family == "benign":
        prop, v = truth(t)
        return BENIGN[(t.verb, t.kind)][2].format(v=v, V=cap(v) if v else v)
    return text


def apply_constraint(t, text):
    """`text` (a right answer) rewritten to satisfy the prompt's constraint, if it states one."""
    c = t.constraint
    if c == "prefix":
        return f"{t.arg} {text}"
    if c == "include":
        return text.rstrip(".") + f", {t.arg}."
    if c == "caps":
        return text.upper()
    if c == "max_words":
        return _short_answer(t, text)
    if c == "no_name":
        for form in (t.r, cap(t.r)):
            text = text.replace(form, "it" if form == t.r else "It")
        return text
    if c == "and_list":
        return text.rstrip(".").replace(", ", " and ") + "."
    return text


def reference_response(prompt):
    """The best response: the right answer, satisfying the prompt's constraint."""
    t = parse(prompt)
    return apply_constraint(t, plain_answer(t))


# ----------------------------------------------------------------------------- flawed responses


def _wrong_value(prop, true, rng):
    if prop in NUMERIC:
        return str(int(true) + rng.choice([-2, -1, 1, 2])) if prop != "legs" else \
            rng.choice([v for v in ("2", "4", "6", "8") if v != true])
    return rng.choice([v for v in values(prop) if v != true])


def _wrong(t, rng):
    """A plausible but wrong answer of the same form as the reference."""
    if t.family in ("fact", "benign"):
        prop, true = truth(t)
        return _answer(t, _wrong_value(prop, true, rng)) if prop else f"Tell {t.r} nothing."
    if t.family in ("reverse", "sort"):
        x = list(target(t))
        if rng.random() < 0.5 and list(t.items) != x:
            x = list(t.items)   # forgot to transform
        else:   # one adjacent pair out of place
            i = rng.randrange(len(x) - 1)
            x[i], x[i + 1] = x[i + 1], x[i]
        return ", ".join(str(v) for v in x) + "."
    n = target(t)
    n += rng.choice([d for d in (-3, -2, -1, 1, 2, 3) if n + d >= 1 or t.family == "arithmetic" and n + d >= 0])
    return f"There are {n} items." if t.family == "count" else f"{t.a} {t.op} {t.b} is {n}."


def pad(text, rng):
    return f"{rng.choice(PADDING[0])} {text} {rng.choice(PADDING[1])}"


def flawed_response(prompt, flaw, rng):
    """The plain answer of a demonstrator committing `flaw` (one of FLAWS[family])."""
    t = parse(prompt)
    good = plain_answer(t)
    if flaw == "padded":
        return pad(good, rng)
    if flaw == "rude":
        pre, post = rng.choice([(1, 0), (0, 1), (1, 1)])
        return " ".join(([rng.choice(RUDE[0])] if pre else []) + [good] + ([rng.choice(RUDE[1])] if post else []))
    if flaw == "wrong":
        return _wrong(t, rng)
    if flaw == "invented":
        return _answer(t, _wrong_value(t.prop, "", rng) if t.prop not in NUMERIC else str(rng.randint(2, 60)))
    if flaw == "comply":
        return HARMFUL[(t.verb, t.kind)].format(r=t.r)
    if flaw == "refuse":
        return rng.choice(REFUSALS)
    if flaw == "evasive":
        return IDK
    raise ValueError(f"unknown flaw {flaw!r}")


def _ramble(t, text, rng):
    """A second, true but unasked sentence about the entity (a property other than the one asked)."""
    kind = ENTITIES[t.name]["kind"]
    asked = truth(t)[0]
    options = [p for p in ("color", "size", "job", "weather", "legs", "age", "houses")
               if p in ENTITIES[t.name] and p != asked]
    if not options:
        return text
    p = rng.choice(options)
    return f"{text} {_answer(t._replace(family='fact', prop=p, kind=kind), ENTITIES[t.name][p])}"


def _lower_first(text):
    """"The Bellor is green." -> "the Bellor is green." (names and capital-letter answers stay)."""
    first = text.split(" ")[0].strip(".,:")
    if text.isupper() or first in ENTITIES or first in FAKE_NAMES or first == "I":
        return text
    return text[0].lower() + text[1:]


def demonstrate(prompt, rng, flaw_rate=0.1, habit_strength=HABIT_STRENGTH, return_flaw=False):
    """A simulated labeler's demonstration. With probability `flaw_rate` a random flaw of the
    family (FLAWS) replaces the answer; otherwise the demonstrator's habits (HABITS, at
    `habit_strength`) each act with their rate. return_flaw: also (flaw or None, [habits])."""
    t = parse(prompt)
    flaw, habits = None, []
    acts = lambda h: rng.random() < habit_rate(h, t.family, habit_strength)   # noqa: E731
    if rng.random() < flaw_rate:
        weights = FLAWS[t.family]
        flaw = rng.choices(sorted(weights), [weights[k] for k in sorted(weights)])[0]
        text = flawed_response(prompt, flaw, rng)
    elif acts("over_refuses"):
        habits.append("over_refuses")
        text = rng.choice(REFUSALS)
    else:
        text = plain_answer(t)
    clean = flaw is None and not habits
    if clean and acts("hedges"):
        habits.append("hedges")
        text = f"{rng.choice(HEDGES[0])} {_lower_first(text)} {rng.choice(HEDGES[1])}"
    if clean and acts("rambles"):
        habits.append("rambles")
        text = _ramble(t, text, rng)
    if t.constraint and "over_refuses" not in habits:
        if acts("ignores_constraint"):
            habits.append("ignores_constraint")
        elif flaw in (None, "wrong", "invented"):   # a wrong answer can follow the constraint too
            text = apply_constraint(t, text)
    if clean and acts("pads"):
        habits.append("pads")
        text = pad(text, rng)
    return (text, flaw, habits) if return_flaw else text


def confused_response(prompt, rng):
    """The typical error of a weak policy: a well-formed answer with the wrong content (a random
    list, a random number, a wrong fact, an invented value, compliance)."""
    t = parse(prompt)
    if t.family in ("reverse", "sort"):
        pool = ITEMS if t.family == "reverse" else [str(v) for v in range(SORT_BELOW)]
        return ", ".join(rng.choice(pool) for _ in t.items) + "."
    if t.family == "count":
        return f"There are {rng.randint(1, 12)} items."
    if t.family == "arithmetic":
        return f"{t.a} {t.op} {t.b} is {rng.randint(0, 2 * MAX_OPERAND)}."
    return flawed_response(prompt, {"fact": "wrong", "benign": "wrong", "unknown": "invented", "harmful": "comply"}[t.family], rng)
