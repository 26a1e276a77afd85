"""From a caption to the salient object's noun phrase and its category.

BLIP captions look like "a close up of a red car parked on a street" or "arafed dog sitting on a
couch". The phrase is the first noun phrase after framing words ("a photo of", "there is"),
cut before the first preposition, verb or clause word: "red car", "dog". The category is the
phrase's head noun (its last word), singular and lower case: "car", "dog".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_FRAMING = re.compile(
    r"^(?:(?:a|an|the|this|that)\s+)?(?:(?:black and white|blurry|close[- ]?up|closeup|color|colour|"
    r"old|vintage|small|large|stock)\s+)*"
    r"(?:photo|photograph|picture|image|close[- ]?up|closeup|view|painting|drawing|illustration|"
    r"rendering|render|shot|cartoon|sketch|snapshot|screenshot|portrait)\s+(?:of|showing|with)\s+"
)
_LEADING = re.compile(r"^(?:there\s+(?:is|are)|this\s+is|it\s+is|here\s+is)\s+")
_ARTEFACTS = frozenset({"arafed", "araffe", "arafe", "araf", "arafly", "there"})
_DETERMINERS = frozenset(
    "a an the this that these those some one two three four five six many several his her its their "
    "our my your".split()
)
_STOP = frozenset(
    "on in at with near under over behind beside by from into onto against above below inside outside "
    "next to for of while and or but that which who whose is are was were be being has have having "
    "as through across around along during after before".split()
)


_COLOURS = frozenset(
    "red green blue yellow white black orange purple pink gray grey brown silver gold golden beige".split()
)


def _is_verb_form(word: str, following: str | None) -> bool:
    """``sitting`` always ends a noun phrase; ``parked`` only before a preposition/article or at the end
    ("red car parked on a street"), so adjectives like "striped shirt" stay in the phrase."""
    if word.endswith("ing") and len(word) > 5:
        return True
    return word.endswith("ed") and len(word) > 4 and (following is None or following in _STOP or following in _DETERMINERS)


@dataclass(frozen=True)
class Phrase:
    """``text``: the noun phrase handed to the grounder (may be empty); ``category``: its head noun."""

    text: str
    category: str


@lru_cache(maxsize=1)
def _inflect():
    import inflect

    return inflect.engine()


@lru_cache(maxsize=4096)
def singular(word: str) -> str:
    """Singular form of an English noun (``dogs`` -> ``dog``; ``glass`` stays ``glass``)."""
    result = _inflect().singular_noun(word)
    return result if isinstance(result, str) and result else word


def _tokens(caption: str) -> list[str]:
    text = caption.lower().replace("-", " ")
    text = re.sub(r"\[[^\]]*\]", " ", text)  # tokenizer leftovers such as [unused12]
    return re.findall(r"[a-z]+", text)


def extract_phrase(caption: str, max_words: int = 4) -> Phrase:
    """The salient object's noun phrase in ``caption`` and its category (both '' when none)."""
    text = " ".join(w for w in _tokens(caption) if w not in _ARTEFACTS or w == "there")
    for _ in range(3):
        stripped = _FRAMING.sub("", _LEADING.sub("", text + " ")).strip()  # " " so "a photo of" strips too
        if stripped == text:
            break
        text = stripped
    words = [w for w in text.split() if w not in _ARTEFACTS]
    while words and words[0] in _DETERMINERS:
        words.pop(0)
    phrase_words: list[str] = []
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else None
        if word == "and" and phrase_words and phrase_words[-1] in _COLOURS and following in _COLOURS:
            phrase_words.append(word)  # "black and white cat" is one phrase
            continue
        if word in _STOP or (phrase_words and _is_verb_form(word, following)):
            break
        if word in _DETERMINERS:
            continue
        phrase_words.append(word)
    phrase_words = phrase_words[-max_words:]
    if not phrase_words:
        return Phrase("", "")
    return Phrase(" ".join(phrase_words), singular(phrase_words[-1]))
