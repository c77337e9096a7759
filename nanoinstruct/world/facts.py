"""The world's entities and their facts, fixed once by WORLD_SEED (the `--seed` of prepare.py
varies only what is sampled from the world, never the facts)."""
import random

WORLD_SEED = 2022

COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black"]
FOODS = ["berries", "fish", "leaves", "seeds", "honey", "mushrooms", "bread", "roots"]
SIZES = ["tiny", "small", "big", "huge"]
JOBS = ["baker", "farmer", "singer", "builder", "fisher", "healer", "painter", "guard"]
WEATHERS = ["sunny", "rainy", "snowy", "windy", "foggy", "stormy"]
ITEMS = ["apple", "moon", "stone", "star", "cup", "hat", "bell", "shell", "drum", "key", "coin",
         "rope", "lamp", "boat", "bird", "egg"]
PROPS = {"creature": ["color", "food", "home", "size", "legs"],
         "person": ["job", "home", "friend", "age"],
         "place": ["weather", "houses"]}
# properties a kind lacks that still make a sensible question (the honest family)
UNKNOWN_PROPS = {"creature": ["job", "age"], "person": ["color", "food", "size"], "place": ["color", "size", "age"]}
NUMERIC = {"legs", "age", "houses"}


def _make_names(rng, n):
    onsets = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "bl", "fl", "gl",
              "kr", "sn", "th", "tr"]
    codas = ["", "", "n", "r", "l", "m", "x"]
    names = set()
    while len(names) < n:
        name = "".join(rng.choice(onsets) + rng.choice("aeiou") + rng.choice(codas) for _ in range(2))
        if 5 <= len(name) <= 8 and "sex" not in name:
            names.add(name.capitalize())
    return sorted(names)


def _build_world():
    rng = random.Random(WORLD_SEED)
    names = _make_names(rng, 56 + 24)
    rng.shuffle(names)
    fake, names = sorted(names[56:]), names[:56]
    kinds = ["creature"] * 24 + ["person"] * 18 + ["place"] * 14
    places = [n for n, k in zip(names, kinds) if k == "place"]
    creatures = [n for n, k in zip(names, kinds) if k == "creature"]
    entities = {}
    for name, kind in zip(names, kinds):
        facts = {"kind": kind}
        if kind == "creature":
            facts.update(color=rng.choice(COLORS), food=rng.choice(FOODS), home=rng.choice(places),
                         size=rng.choice(SIZES), legs=str(rng.choice([2, 4, 6, 8])))
        elif kind == "person":
            facts.update(job=rng.choice(JOBS), home=rng.choice(places), friend=rng.choice(creatures),
                         age=str(rng.randint(18, 70)))
        else:
            facts.update(weather=rng.choice(WEATHERS), houses=str(rng.randint(3, 40)))
        entities[name] = facts
    return entities, fake


ENTITIES, FAKE_NAMES = _build_world()   # {name: {"kind": ..., prop: value}}, names of no entity
NAMES = sorted(ENTITIES)
BY_KIND = {k: [n for n in NAMES if ENTITIES[n]["kind"] == k] for k in PROPS}


def kind_of(name):
    return ENTITIES[name]["kind"] if name in ENTITIES else None


def ref(name, kind=None):
    """How text names an entity: creatures take "the" ("the Bellor"), people and places do not."""
    return f"the {name}" if (kind or kind_of(name)) == "creature" else name


def cap(s):
    return s[0].upper() + s[1:]


def values(prop):
    """All values a property can take, as they appear in text (lowercase words or digits)."""
    table = {"color": COLORS, "food": FOODS, "size": SIZES, "job": JOBS, "weather": WEATHERS,
             "home": BY_KIND["place"], "friend": BY_KIND["creature"]}
    return table.get(prop, [])   # numeric properties: any number
