"""From a caption to the salient object's noun phrase and its category.

BLIP captions look like "a close up of a red car parked on a street", "arafed man riding a horse"
or "there is a dog that is sitting on the grass". The phrase (handed to GroundingDINO) is the
caption's first noun phrase, seen through the nouns that frame or count another one; its category
(the catalog's ``category``) is the head noun, singular and lower case:

* framing nouns: "an aerial view of a city" -> "city", "a 3d rendering of a robot" -> "robot";
* partitives and parts: "a pair of scissors" -> "scissors", "a herd of elephants" -> "elephant",
  "the front of a house" -> "house";
* compounds end at their head: "a camera lens" -> "lens", "a gold wedding ring" -> "ring"; the few
  whose head alone names something else keep both words ("teddy bear", "hot dog", "ice cream");
* a noun phrase ends where a participle, a finite verb, a preposition or a clause starts:
  "a dog sitting on a couch", "a car parked on a street", "a cat sits on a mat", "two dogs play";
* possessives name the possessed: "a child's drawing" -> "drawing";
* BLIP's artefact words ("arafed", "araffe") are dropped; when one stands for the subject of a verb
  ("araffe sitting on a bench") the first noun phrase after the verb is taken ("bench").

How: a small grammar over word classes. Open-class words (can this word be a noun, a verb, an
adjective; is it an inflected form; its noun lemma) come from **lemminflect**'s lexicon (derived
from the NIH SPECIALIST Lexicon, shipped inside the 1 MB wheel, works offline, dictionary lookups:
deterministic; imported on first use). Function words and the caption-specific lists (framing, partitive, -ing nouns that
name things, colours, materials) are in :mod:`engine.labeling.phrase_words`.
Why not a tagger: spaCy's English models are not on PyPI (the registry holds only placeholder
packages), NLTK's and stanza's models are separate downloads that fail offline, and TextBlob's
offline Pattern tagger mis-tags exactly these captions ("a teddy bear" -> bear/VB, "a pile of
leaves" -> VBZ, "a 3d rendering" -> VBG) and takes 2-5 s to import (it pulls in NLTK) and ~0.2 ms
a caption to tag alone; this grammar takes ~30 us a caption once the lexicon is loaded (~0.5 s, on
first use).
Plurals go through the same lexicon: "bus", "lens", "cactus", "species" stay, "people" -> "person",
"mice" -> "mouse", "leaves" -> "leaf"; pluralia tantum ("scissors", "jeans") keep their form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from engine.labeling import phrase_words as pw

_STOPS = pw.PREPOSITIONS | pw.CONJUNCTIONS | pw.RELATIVES | pw.AUXILIARIES | pw.PRONOUNS | (pw.ADVERBS - pw.DEGREE)
_STOPS = _STOPS | frozenset("named called titled entitled labeled labelled".split())
_FRAMING_WITH = frozenset("photo photograph picture pic image closeup shot snapshot screenshot".split())
_PLURAL_MODIFIERS = frozenset("sports arms jeans glasses clothes goods savings parts news arts crafts sales".split())


@dataclass(frozen=True)
class Phrase:
    """``text``: the noun phrase handed to the grounder (may be empty); ``category``: its head noun."""

    text: str
    category: str


@lru_cache(maxsize=1)
def _lemminflect():
    import lemminflect

    return lemminflect


@lru_cache(maxsize=65536)
def _classes(word: str) -> dict[str, tuple[str, ...]]:
    """Word class -> lemmas (``{"NOUN": ("bus",), "VERB": ("bus",)}``); ``{}`` for unknown words."""
    if not word.replace("-", "").isalpha():
        return {}
    return _lemminflect().getAllLemmas(word)


def _is_number(word: str) -> bool:
    return word.isdigit()


def _can_noun(word: str) -> bool:
    """Nouns and unknown words (names, new words: "corgi", "iphone"); never numbers or "3d"."""
    if any(c.isdigit() for c in word):
        return False
    classes = _classes(word)
    return "NOUN" in classes or not classes or word in pw.EXTRA_NOUNS


def _inflected_verb(word: str) -> bool:
    """An inflected verb form (sitting, parked, sits), not a base form (ring, bus)."""
    return any(lemma != word for lemma in _classes(word).get("VERB", ()))


def _modifier_like(word: str) -> bool:
    return word in pw.COLOURS or word in pw.MATERIALS or "ADJ" in _classes(word) or any(c.isdigit() for c in word)


def _strong_noun(word: str) -> bool:
    """A noun that is no colour, material or adjective: what a participle can follow ("dog")."""
    return _can_noun(word) and not _modifier_like(word)


def _plural(word: str) -> bool:
    return word in pw.PLURAL_FORMS or any(lemma != word for lemma in _classes(word).get("NOUN", ()))


@lru_cache(maxsize=65536)
def singular(word: str) -> str:
    """Singular form of an English noun (``dogs`` -> ``dog``; ``bus``, ``glass``, ``scissors`` stay)."""
    if word in pw.IRREGULAR:
        return pw.IRREGULAR[word]
    if word in pw.PLURALIA_TANTUM:
        return word
    classes = _classes(word)
    if "NOUN" in classes:
        return classes["NOUN"][0]
    if classes or not word.isalpha() or word.endswith(("ss", "us")) or len(word) < 4:
        return word
    return _lemminflect().getLemma(word, "NOUN", lemmatize_oov=True)[0] or word


def _tokens(caption: str) -> list[str]:
    text = caption.lower()
    text = re.sub(r"\[[^\]]*\]", " ", text)  # tokenizer leftovers such as [unused12]
    text = re.sub(r"(\w)\s*['\u2019`]\s*s\b", r"\1 's", text)  # "child's", BLIP's "child ' s"
    text = re.sub(r"(\w)s['\u2019](?=\s|$)", r"\1s '", text)  # plural possessive "dogs' bowls"
    tokens: list[str] = []
    for raw in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*|'s|'", text):
        parts = raw.split("-")
        if len(parts) > 1 and not any(len(p) == 1 for p in parts):
            tokens.extend(parts)  # "close-up" -> close up, "heart-shaped" -> heart shaped; "t-shirt" stays
        else:
            tokens.append(raw)
    joined: list[str] = []
    for token in tokens:
        if joined and (joined[-1], token) in pw.JOINED:
            joined[-1] = pw.JOINED[(joined[-1], token)]
        else:
            joined.append(token)
    return joined


def _ends_phrase(words: list[str], word: str, following: str | None, singular_det: bool) -> bool:
    """Does ``word`` end the noun phrase ``words`` (non-empty)? ``following`` is the next token."""
    has_strong = any(_strong_noun(w) for w in words)
    has_noun = any(_can_noun(w) for w in words)
    following_noun = following is not None and following not in _STOPS and following not in pw.DETERMINERS and _can_noun(following)
    if word.endswith("ing") and _inflected_verb(word):
        if word in pw.THING_ING:  # "a tall building", "a church building"; but "a man painting a wall"
            return has_strong and (following in pw.DETERMINERS or following in pw.PRONOUNS or words[-1] in pw.PERSONS)
        if has_strong:
            return True  # "a dog sitting", "a man holding"
        return has_noun and not following_noun  # "an old fishing boat" vs "a dress hanging on a rack"
    if word in pw.BARE_PARTICIPLES and has_strong and following in pw.PARTICIPLE_PARTICLES:
        return True  # "a sandwich cut in half" (but "a fresh cut of beef", "a hair cut")
    if _inflected_verb(word) and not word.endswith("s"):  # past participles
        if _can_noun(word) and not has_strong:
            return False  # "a red rose" (not the past of "rise")
        return has_noun and not following_noun  # "a car parked on" vs "a heart shaped box"
    previous = words[-1]
    if word.endswith("s") and _inflected_verb(word) and has_strong and not _plural(previous):
        return singular_det or not _can_noun(word)  # "a dog sits", "the cat looks at"
    if _plural(previous) and previous not in _PLURAL_MODIFIERS and word in _classes(word).get("VERB", ()):
        if following is None or following in _STOPS or following in pw.DETERMINERS:
            return True  # "two dogs play in the grass"
    if has_strong and following == "of" and "ADJ" in _classes(word):
        return True  # "a glass jar full of cookies"
    return has_strong and not _can_noun(word)  # "a cat asleep on a bed"


def _parse_np(tokens: list[str], start: int) -> tuple[list[str], int]:
    """The noun phrase starting at ``tokens[start]`` (determiners skipped) and the index after it.

    Returns ``([], index)`` when no noun phrase starts there (a stop word, or a verb without a subject).
    """
    i, n = start, len(tokens)
    had_det = singular_det = False
    while i < n and (tokens[i] in pw.DETERMINERS or _is_number(tokens[i])):
        had_det, singular_det = True, tokens[i] in pw.SINGULAR_DETERMINERS
        i += 1
    words: list[str] = []
    possessor: list[str] = []
    while i < n:
        word, following = tokens[i], tokens[i + 1] if i + 1 < n else None
        if pw.ARTEFACT.match(word) or word in pw.DEGREE or (word == "'" and not (words and words[-1].endswith("s"))):
            i += 1
            continue
        if word in ("'s", "'") and words:  # possessive: "a child's drawing" names the drawing
            possessor, words = words, []
            i += 1
            continue
        if word in ("and", "or") and words and following and all(_modifier_like(w) for w in words + [following]):
            words.append(word)  # "a black and white cat"
            i += 1
            continue
        if word in _STOPS or word == "'s" or word in pw.DETERMINERS or _is_number(word):
            break
        if words and _ends_phrase(words, word, following, singular_det):
            break
        if not words and not had_det and _inflected_verb(word) and word not in pw.THING_ING:
            if not _can_noun(word) or word.endswith("ing"):
                if following is None or following in _STOPS or following in pw.DETERMINERS:
                    break  # a verb whose subject is missing: "araffe sitting on a bench"
        words.append(word)
        i += 1
    return _trim(words or possessor), i


def _trim(words: list[str]) -> list[str]:
    """Cut after the last word that can be a noun (the head); keep all when none can."""
    for index in range(len(words) - 1, -1, -1):
        if _can_noun(words[index]) and words[index] not in ("and", "or"):
            return words[: index + 1]
    return words


def _first_np(tokens: list[str], start: int) -> tuple[list[str], int]:
    """The first noun phrase at or after ``start``, skipping stop words and subjectless verbs."""
    i = start
    while i < len(tokens):
        words, end = _parse_np(tokens, i)
        if words:
            return words, end
        i = max(end, i) + 1
    return [], len(tokens)


def _seen_through(tokens: list[str], words: list[str], end: int) -> tuple[list[str], int] | None:
    """``words`` replaced by what it frames, counts or is part of ("a herd of elephants"), or
    ``None`` when it is the object itself; ``([], end)`` when a framing noun frames nothing."""
    if end >= len(tokens):
        return None
    link, key = tokens[end], singular(words[-1])
    framing = key in pw.FRAMING and (link in pw.FRAMING_LINKS - {"with"} or (link == "with" and key in _FRAMING_WITH))
    if not framing and not (link == "of" and (key in pw.PARTITIVES or key in pw.PARTS)):
        return None
    inner, inner_end = _first_np(tokens, end + 1)
    if inner:
        return inner, inner_end
    return ([], end) if framing else None


def _category(words: list[str], tokens: list[str], end: int) -> str:
    head = singular(words[-1])
    if len(words) >= 2 and (words[-2], head) in pw.COMPOUND_CATEGORIES:
        return pw.COMPOUND_CATEGORIES[(words[-2], head)]
    if words[-1] == "glasses" and end < len(tokens) and tokens[end] == "of":
        return "glass"  # "two glasses of wine"
    return head


def extract_phrase(caption: str, max_words: int = 4) -> Phrase:
    """The salient object's noun phrase in ``caption`` and its category (both '' when none).

    ``max_words``: the phrase keeps at most this many words, ending at the head noun.
    """
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    tokens = _tokens(caption)
    words, end = _first_np(tokens, 0)
    for _ in range(4):  # "a close up of a bunch of grapes": two levels
        if not words:
            break
        seen = _seen_through(tokens, words, end)
        if seen is None:
            break
        words, end = seen
    words = [w for w in words if w not in pw.DEGREE][-max_words:]
    while words[:1] in (["and"], ["or"]):  # "red and blue abstract painting" cut to 4 words
        words = words[1:]
    if not words:
        return Phrase("", "")
    return Phrase(" ".join(words), _category(words, tokens, end))
