"""Seeded English sentences for the synthetic corpus, from built-in words and templates.

Nothing is downloaded: word lists and templates live here. The vocabulary leans on the
sounds that move the lips most and that a lip-sync model gets wrong first: bilabials
(p, b, m close the lips), rounded vowels (oo, oh, aw push them forward) and open vowels
(ah, a drop the jaw). Sentence shapes vary the prosody the motion model hears: statements,
questions, exclamations, comma lists, two-word fragments up to about 25-word compounds,
and numbers, years, dates, times and prices written in digits (the TTS wrappers write them
out identically for every engine, training/tts/text.py). Every word is in the CMU
dictionary so pocketsphinx can align pico's speech without guessing pronunciations.

``sentences(seed, count)`` is deterministic for a seed (Python's ``random.Random``).
"""

from __future__ import annotations

import random

MAX_WORDS = 25

NAMES = (
    "Bob", "Pam", "Mabel", "Paul", "Maud", "Ben", "Molly", "Amber", "Bruno", "Robert",
    "Barbara", "Tom", "Polly", "Paula", "Brooke", "Morgan", "Maya", "Pablo", "Emma", "Bobby",
    "Mom", "Grandpa", "Walter", "Rosa", "Otto", "Laura", "Boris", "Naomi", "Hugo", "Ruby",
)  # fmt: skip
NOUNS = (
    "boat", "map", "mop", "ball", "baby", "balloon", "moon", "pool", "bubble", "puppy",
    "pumpkin", "apple", "market", "mountain", "bottle", "blanket", "book", "broom", "spoon",
    "bamboo", "pebble", "mirror", "harbor", "umbrella", "piano", "popcorn", "banjo", "tuba",
    "robot", "hammock", "barn", "garden", "car", "drum", "parrot", "pond", "room", "tomato",
)  # fmt: skip
PLURALS = (
    "boats", "maps", "balloons", "bubbles", "puppies", "pumpkins", "apples", "bottles",
    "blankets", "books", "spoons", "pebbles", "pianos", "robots", "parrots", "tomatoes",
    "plums", "peppers", "pillows", "baskets", "boxes", "bowls", "mops", "brooms",
)  # fmt: skip
ADJECTIVES = (
    "blue", "big", "brown", "warm", "bold", "rubber", "smooth", "broad", "proud", "bumpy",
    "humble", "purple", "pale", "calm", "soft", "hot", "odd", "polished", "famous", "moody",
    "gloomy", "foolish", "awful", "lovely", "tall", "broken", "plump", "round", "open",
)  # fmt: skip
# (past tense, base form)
VERBS = (
    ("bought", "buy"), ("brought", "bring"), ("painted", "paint"), ("dropped", "drop"),
    ("moved", "move"), ("opened", "open"), ("borrowed", "borrow"), ("pushed", "push"),
    ("bumped", "bump"), ("wrapped", "wrap"), ("tossed", "toss"), ("found", "find"),
    ("watched", "watch"), ("polished", "polish"), ("packed", "pack"), ("mopped", "mop"),
    ("grabbed", "grab"), ("pulled", "pull"), ("booked", "book"), ("mapped", "map"),
    ("rolled", "roll"), ("cooked", "cook"), ("stole", "steal"), ("sold", "sell"),
)  # fmt: skip
PLACES = (
    "by the pool", "at the market", "in the morning", "on Monday", "before noon",
    "across the bridge", "on the boat", "behind the barn", "under the moon",
    "in the bathroom", "at the bus stop", "near the harbor", "up the mountain",
    "at home", "in Boston", "on the porch", "after lunch", "at the mall", "in the park",
)  # fmt: skip
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
CONNECTORS = ("and", "but", "so", "because", "while", "before", "although")
INTERJECTIONS = ("Oh boy", "Wow", "Oh", "Boo", "Bravo", "Whoa", "Hooray", "Ha", "Hmm", "Oops")
FRAGMENTS = (
    "Bob paused.", "Move over.", "Maybe tomorrow.", "Pop music!", "Book it.", "Oh, Mom!",
    "Please, Paul?", "Bye, Bob!", "Why not?", "Almost done.", "Boo hoo.", "Yum, pumpkin pie.",
    "Not now.", "Absolutely, Bob!", "Who moved?", "Whoa, whoa!", "Calm down.", "Open up!",
)  # fmt: skip


class _Maker:
    """Draws words and phrases from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, options: tuple[str, ...]) -> str:
        return self.rng.choice(options)

    def noun_phrase(self) -> str:
        det = self.pick(("the", "a", "my", "his", "her", "our", "your", "that"))
        adjective = self.pick(ADJECTIVES) + " " if self.rng.random() < 0.6 else ""
        noun = self.pick(NOUNS)
        if det == "a" and (adjective or noun)[0] in "aeiou":
            det = "an"
        return f"{det} {adjective}{noun}"

    def count_phrase(self) -> str:
        n = self.rng.choice((2, 3, 4, 5, 7, 9, 12, 15, 20, 25, 40, 99, 101, 250, 1000))
        if self.rng.random() < 0.4:
            n = self.rng.randint(2, 999)
        return f"{n} {self.pick(ADJECTIVES)} {self.pick(PLURALS)}"

    def year(self) -> int:
        return self.rng.randint(1850, 2030)

    def date(self) -> str:
        day = f"{self.pick(MONTHS)} {self.rng.randint(1, 28)}"
        return f"{day}, {self.year()}" if self.rng.random() < 0.5 else day

    def clause(self) -> str:
        name, (past, _) = self.pick(NAMES), self.rng.choice(VERBS)
        shape = self.rng.randrange(4)
        if shape == 0:
            return f"{name} {past} {self.noun_phrase()}"
        if shape == 1:
            return f"{name} {past} {self.noun_phrase()} {self.pick(PLACES)}"
        if shape == 2:
            return f"{self.noun_phrase()} was {self.pick(ADJECTIVES)}"
        return f"{name} {past} {self.count_phrase()}"


def _statement(m: _Maker) -> str:
    return m.clause() + "."


def _question(m: _Maker) -> str:
    name, (_, base) = m.pick(NAMES), m.rng.choice(VERBS)
    return m.pick((
        f"Did {name} {base} {m.noun_phrase()}?",
        f"Why was {m.noun_phrase()} so {m.pick(ADJECTIVES)}?",
        f"Who {m.rng.choice(VERBS)[0]} {m.noun_phrase()} {m.pick(PLACES)}?",
        f"Would you pass me {m.noun_phrase()}, {name}?",
        f"Can {name} {base} {m.count_phrase()} by {m.pick(MONTHS)}?",
        f"Is {m.noun_phrase()} still {m.pick(PLACES)}?",
    ))  # fmt: skip


def _exclamation(m: _Maker) -> str:
    return m.pick((
        f"{m.pick(INTERJECTIONS)}, {m.noun_phrase()} is so {m.pick(ADJECTIVES)}!",
        f"What a {m.pick(ADJECTIVES)} {m.pick(NOUNS)}!",
        f"{m.pick(NAMES)}, move {m.noun_phrase()} now!",
        f"{m.pick(INTERJECTIONS)}! {m.clause()}!",
    ))  # fmt: skip


def _comma_list(m: _Maker) -> str:
    items = [m.noun_phrase() for _ in range(m.rng.randint(3, 5))]
    (past, _) = m.rng.choice(VERBS)
    return f"{m.pick(NAMES)} {past} {', '.join(items[:-1])} and {items[-1]}."


def _numbers(m: _Maker) -> str:
    name = m.pick(NAMES)
    return m.pick((
        f"{name} {m.rng.choice(VERBS)[0]} {m.count_phrase()} in {m.year()}.",
        f"The {m.pick(NOUNS)} was built in {m.year()}.",
        f"We met {name} on {m.date()}.",
        f"The {m.pick(NOUNS)} costs ${m.rng.randint(2, 500)}.",
        f"Meet me {m.pick(PLACES)} at {m.rng.randint(1, 12)}:{m.rng.choice((0, 15, 30, 45)):02d}.",
        f"Only {m.rng.randint(2, 99)}.{m.rng.randint(1, 9)} percent of the {m.pick(PLURALS)}"
        f" were {m.pick(ADJECTIVES)}.",
        f"Was {name} born on {m.date()}?",
        f"Room {m.rng.randint(100, 999)} opens on the {m.rng.randint(1, 31)}th.",
    ))  # fmt: skip


def _short(m: _Maker) -> str:
    name, (past, base) = m.pick(NAMES), m.rng.choice(VERBS)
    return m.pick((
        m.pick(FRAGMENTS),
        f"Poor {name}.",
        f"{m.pick(ADJECTIVES)} {m.pick(PLURALS)}!",
        f"{name} {past} it.",
        f"{m.pick(INTERJECTIONS)}, {name}!",
        f"Not the {m.pick(NOUNS)}!",
        f"{name}, {base} it?",
    ))  # fmt: skip


def _compound(m: _Maker) -> str:
    parts = [m.clause()]
    for _ in range(m.rng.randint(1, 3)):
        parts.append(f"{m.pick(CONNECTORS)} {m.clause()}")
    return ", ".join(parts) + m.pick((".", ".", "!", "?"))


_KINDS = (
    (_statement, 3), (_question, 2), (_exclamation, 2), (_comma_list, 1), (_numbers, 2),
    (_short, 2), (_compound, 2),
)  # fmt: skip


def _word_count(sentence: str) -> int:
    return len(sentence.split())


def _capitalise(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


def sentences(seed: int, count: int) -> list[str]:
    """``count`` distinct sentences (while the grammar allows), the same for the same seed."""
    if count < 0:
        raise ValueError("count must be >= 0")
    rng = random.Random(seed)
    maker = _Maker(rng)
    kinds, weights = zip(*_KINDS, strict=True)
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < count:
        attempts += 1
        kind = rng.choices(kinds, weights=weights)[0]
        sentence = _capitalise(kind(maker))
        if _word_count(sentence) > MAX_WORDS:
            continue
        if sentence in seen and attempts < 20 * count + 100:
            continue
        seen.add(sentence)
        out.append(sentence)
    return out
