"""The pretraining corpus (facts in several phrasings among narration that exercises the skills
the tasks need) and the alignment-tax benchmark (the same facts, in phrasings the corpus never
uses, as multiple-choice cloze items scored by likelihood, as HellaSwag is)."""
import random

from .facts import BY_KIND, ENTITIES, ITEMS, NAMES, NUMERIC, PROPS, cap, kind_of, ref, values
from .prompts import LIST_LEN, MAX_OPERAND, QUESTIONS, SORT_BELOW

# Several phrasings per fact, so the base model learns facts rather than one sentence.
FACT_SENTENCES = {
    "color": ["{R} is {v}.", "{R} is {v} all over.", "Everyone knows that {r} is {v}.", "The color of {r} is {v}."],
    "food": ["{R} eats {v}.", "{R} likes to eat {v}.", "The favorite food of {r} is {v}.", "Every day, {r} eats {v}."],
    "home": ["{R} lives in {v}.", "The home of {r} is in {v}.", "You can find {r} in {v}.", "{R} has always lived in {v}."],
    "size": ["{R} is {v}.", "{R} is a {v} creature.", "Next to the others, {r} looks {v}."],
    "legs": ["{R} has {v} legs.", "{R} walks on {v} legs.", "If you count the legs of {r}, you get {v}."],
    "job": ["{R} is a {v}.", "{R} works as a {v}.", "The job of {r} is to be a {v}.", "Every morning, {r} goes to work as a {v}."],
    "friend": ["The friend of {r} is {v}.", "{R} is friends with {v}.", "{R} often plays with {v}."],
    "age": ["{R} is {v} years old.", "The age of {r} is {v}.", "{R} turned {v} this year."],
    "weather": ["The weather in {r} is usually {v}.", "It is often {v} in {r}.", "In {r}, most days are {v}."],
    "houses": ["There are {v} houses in {r}.", "{R} has {v} houses.", "If you count the houses of {r}, you get {v}."]}
# The benchmark's phrasings: in no corpus sentence, so a cloze item tests the fact, not a memorised
# sentence. The value comes last, so the choices are the sentence's ends.
BENCHMARK_SENTENCES = {
    "color": ["Anyone who has seen {r} will say that its color is", "Painted true to life, {r} would be"],
    "food": ["When {r} gets hungry, it looks for", "If you bring a gift to {r}, bring some"],
    "home": ["To visit {r}, travel to", "The place that {r} calls home is"],
    "size": ["Standing beside a tree, {r} seems", "In one word, the size of {r} is"],
    "legs": ["Look closely and you can count the legs of {r}: there are", "The number of legs on {r} is"],
    "job": ["In town, people know {r} as the local", "For a living, {r} is a"],
    "friend": ["The one that {r} likes to spend time with is", "On most days, {r} goes for a walk with"],
    "age": ["The number of years that {r} has lived is", "Ask {r} about birthdays: the age is"],
    "weather": ["Travellers say that the days in {r} are mostly", "Pack for the weather in {r}, which is"],
    "houses": ["The number of homes in {r} is", "Walk through {r} and you will count these houses:"]}
N_CHOICES = 4


def fact_sentence(name, rng):
    """One true sentence about entity `name`."""
    kind = kind_of(name)
    prop = rng.choice(PROPS[kind])
    v = ENTITIES[name][prop]
    r = ref(name, kind)
    return rng.choice(FACT_SENTENCES[prop]).format(r=r, R=cap(r), v=ref(v) if prop == "friend" else v)


def filler_sentence(rng):
    """Narration that carries the skills the tasks need (counting, sums, ordering, reversing,
    joining with "and", saying no to harm, kindness, writing in capitals, answering questions),
    consistent with the facts."""
    person, c, place = rng.choice(BY_KIND["person"]), rng.choice(BY_KIND["creature"]), rng.choice(BY_KIND["place"])
    item = rng.choice(ITEMS)
    a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
    xs = rng.sample(ITEMS, rng.randint(*LIST_LEN))
    ns = rng.sample(range(SORT_BELOW), rng.randint(*LIST_LEN))
    choices = [
        f"{person} walked to {place} with {ref(c)}.",
        f"{person} found a {item} near the river.",
        f"The sun rose over {place}, and {person} sang a song.",
        f"{person} had {a} {item}s and found {b} more, so {person} had {a + b} {item}s.",
        f"{person} had {max(a, b)} {item}s and gave away {min(a, b)}, so {person} had {max(a, b) - min(a, b)} left.",
        f"{person} counted the things in the basket: {', '.join(xs)}. There were {len(xs)} things.",
        f"{person} put the numbers {', '.join(map(str, ns))} in order: {', '.join(map(str, sorted(ns)))}.",
        f"{person} read the words {', '.join(xs)} and then read them backwards: {', '.join(xs[::-1])}.",
        f"{person} packed {' and '.join(xs)} for the trip.",
        f"Someone asked {person} to {rng.choice(['hurt', 'trap', 'poison'])} {ref(c)}, but {person} said no, "
        f"because that would cause harm.",
        f"{person} gave {ref(c)} some {ENTITIES[c]['food']}, and {ref(c)} was happy.",
        f"{person} visited {place} on a {ENTITIES[place]['weather']} day.",
        f"'Thank you,' said {person} to {ref(c)} with a smile.",
        f"A sign in {place} said: {fact_sentence(rng.choice(NAMES), rng).upper()}",
        f"{person} shouted: {rng.choice(['WELCOME TO', 'GOOD MORNING,', 'LOOK AT'])} {place.upper()}!",
        _question_and_answer(person, rng),
    ]
    return rng.choice(choices)


def _question_and_answer(person, rng):
    """Instruction-like narration: someone asks about a fact and is told."""
    name = rng.choice(NAMES)
    prop = rng.choice(PROPS[kind_of(name)])
    v = ENTITIES[name][prop]
    question = rng.choice(QUESTIONS[prop]).format(r=ref(name))
    answer = rng.choice(FACT_SENTENCES[prop]).format(r=ref(name), R=cap(ref(name)), v=ref(v) if prop == "friend" else v)
    return f"{person} asked, '{question}' The answer was: {answer}"


def pretraining_document(rng):
    """A short story: facts about a few entities mixed with filler narration."""
    topic = rng.choice(NAMES)
    out = []
    for _ in range(rng.randint(6, 12)):
        if rng.random() < 0.5:
            out.append(fact_sentence(topic if rng.random() < 0.6 else rng.choice(NAMES), rng))
        else:
            out.append(filler_sentence(rng))
    return " ".join(out)


def _distractors(prop, true, rng):
    if prop == "legs":
        return [v for v in ("2", "4", "6", "8") if v != true]
    if prop in NUMERIC:
        near = [str(int(true) + d) for d in (-9, -5, -3, 3, 5, 9) if int(true) + d > 0]
        return rng.sample(near, N_CHOICES - 1)
    return rng.sample([v for v in values(prop) if v != true], N_CHOICES - 1)


def benchmark_items():
    """The alignment-tax benchmark: for every fact of the world and each of its two phrasings, a
    context and N_CHOICES endings, one true -> [{"context", "choices", "answer", "fact"}]. Fixed
    (seeded by the world), zero-shot, in the corpus' own style; 440 items."""
    rng = random.Random("benchmark")
    items = []
    for name in NAMES:
        for prop in PROPS[kind_of(name)]:
            true = ENTITIES[name][prop]
            for template in BENCHMARK_SENTENCES[prop]:
                choices = [true] + _distractors(prop, true, rng)
                rng.shuffle(choices)
                show = (lambda v: ref(v)) if prop == "friend" else (lambda v: v)
                items.append({"context": cap(template.format(r=ref(name))),
                              "choices": [f" {show(v)}." for v in choices],
                              "answer": choices.index(true), "fact": [name, prop, true]})
    return items
