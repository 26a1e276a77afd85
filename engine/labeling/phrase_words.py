"""Closed word classes and the caption-specific word lists that the phrase grammar uses.

Open-class words (nouns, verbs, adjectives and their inflections) come from lemminflect's lexicon
(see :mod:`engine.labeling.phrase`); what is here is what a lexicon cannot say: function words,
the nouns that frame or count another noun ("a photo of", "a herd of"), and which nouns in -ing
name things rather than actions.
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Determiners and quantity words: skipped at the start of a noun phrase, never part of it.
DETERMINERS = _words(
    "a an the this that these those some any each every another either neither no its his her their my your our "
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen twenty thirty fifty "
    "hundred hundreds thousand thousands dozen dozens several many few multiple numerous various both all "
    "other more most much lots such"
)
# Determiners after which a noun is singular ("a dog sits": "sits" must be a verb).
SINGULAR_DETERMINERS = _words("a an one this that the each every another")

PREPOSITIONS = _words(
    "of on in at with near under over behind beside besides by from into onto upon against above below beneath "
    "outside next to for through across around along during after before between among amongst toward towards "
    "underneath atop within without like via off out up down past beyond opposite throughout alongside amid "
    "inside while as than per except"
)
CONJUNCTIONS = _words("and or but nor so because if when whereas although though")
RELATIVES = _words("that which who whom whose where what how why")
AUXILIARIES = _words(
    "is are was were be been being am has have had do does did can could will would may might shall should must "
    "isn aren wasn weren doesn don didn 's s"
)
PRONOUNS = _words(
    "it he she they we you i me him them us there here someone something somebody anyone anything everyone "
    "everything nobody nothing itself himself herself themselves yourself myself ourselves"
)
ADVERBS = _words(
    "very really extremely quite super rather fairly too also just only not almost nearly together "
    "nearby away again still already then now"
)
# Degree words kept out of the phrase when they come before an adjective ("a very large dog").
DEGREE = _words("very really extremely quite super rather fairly so too")

# BLIP-large's artefact tokens ("arafed man", "araffe sitting on a bench"): never words of a phrase.
ARTEFACT = re.compile(r"^arr?af+(?:e|ed|ey|y|ly|fy|fe|fed|fes|s)?$")

# "<framing noun> of X" shows X: the image is the photo / painting / view, the object is X.
FRAMING = _words(
    "photo photograph photography pic picture image closeup view painting drawing illustration rendering render "
    "shot cartoon sketch snapshot screenshot portrait silhouette depiction artwork art print engraving etching "
    "watercolor watercolour doodle graphic icon clipart vector scene still reflection selfie macro mural collage "
    "panorama glimpse frame footage x-ray diagram caricature animation infographic model replica representation "
    "photoshoot poster"
)
# Words that may link a framing noun to what it shows ("a photo showing a dog").
FRAMING_LINKS = _words("of showing shows featuring depicting with")

# "<partitive> of X" counts or measures X: the object is X ("a pair of scissors" -> scissors).
PARTITIVES = _words(
    "pair group herd bunch slice piece stack row set lot couple flock pile bundle collection crowd team family "
    "pack swarm school heap handful number variety assortment array cluster line bouquet field litter pod troop "
    "colony gaggle bevy army fleet series sequence selection range mass cloud plenty load ton clump patch sprig "
    "strand slab chunk wedge strip sheet roll scoop drop bar loaf ear stalk stick grain bit portion serving "
    "helping kind type sort species breed style form version example specimen member dozen display arrangement"
)
# "<part> of X" is a region of X: the object is X ("the front of a house" -> house).
PARTS = _words(
    "front back side top bottom inside interior exterior outside edge corner middle center centre end tip "
    "surface half rear part section detail shape outline body"
)

# Nouns in -ing that name things (their verb reading is rarer in captions): "a tall building",
# "a gold wedding ring", "a framed painting". Other -ing words after a noun start a participle
# clause ("a dog sitting on a couch").
THING_ING = _words(
    "building painting drawing wedding clothing ceiling icing frosting railing carving engraving etching filling "
    "topping stuffing bedding awning crossing opening dressing rendering lining siding housing "
    "planting recording writing marking wiring clearing offering covering coating casing packaging "
    "flooring fencing paving tiling shelving seating lighting plumbing roofing piping trimming wrapping binding "
    "molding moulding cladding scaffolding carpeting tubing netting dwelling lodging stocking "
    "bearing fitting mooring sibling duckling gosling earring evening morning king awning bunting lettering "
    "seasoning breading decking dumpling pudding"
)

# People nouns: an -ing word after one is an action even when it can name a thing ("a man drawing").
PERSONS = _words(
    "man men woman women boy boys girl girls child children kid kids person people baby babies lady ladies guy "
    "guys artist artists worker workers student students teenager teenagers player players chef chefs cook cooks "
    "waiter waitress farmer farmers doctor nurse soldier soldiers officer firefighter policeman teacher musician "
    "dancer athlete rider driver mother father mom dad grandmother grandfather toddler adult adults bride groom"
)

COLOURS = _words(
    "red green blue yellow white black orange purple pink gray grey brown silver gold golden beige tan teal "
    "turquoise maroon navy violet cream ivory khaki lavender magenta cyan crimson scarlet bronze copper dark "
    "light pale bright colorful colourful multicolored multicoloured striped spotted checkered plaid"
)
MATERIALS = _words(
    "wood wooden metal metallic stone brick glass plastic paper leather cotton wool woolen marble ceramic steel "
    "iron concrete rubber straw wicker bamboo clay porcelain crystal denim velvet silk lace fur felt cardboard "
    "chocolate tin aluminum aluminium granite rattan cork canvas vinyl foam plush knit knitted ice snow sand"
)

# Nouns whose plural form is the only form (the category keeps it).
PLURALIA_TANTUM = _words(
    "scissors pants jeans trousers shorts glasses sunglasses eyeglasses spectacles goggles binoculars headphones "
    "earphones pliers tongs tweezers clothes pajamas pyjamas leggings tights overalls sweatpants underpants "
    "panties knickers shears stairs"
)
# Nouns the lexicon lemmatises unhelpfully for a category.
IRREGULAR = {"people": "person", "persons": "person", "leaves": "leaf", "dice": "dice", "media": "media",
             "cattle": "cattle", "police": "police", "selfies": "selfie", "cookies": "cookie", "movies": "movie",
             "lenses": "lens", "axes": "axe", "trousers": "trousers", "tongs": "tongs"}
# Plural forms the lexicon does not mark as plural (no -s to strip).
PLURAL_FORMS = _words("people cattle police")
# Nouns the lexicon lacks.
EXTRA_NOUNS = _words("top tops")

# Past participles spelt like their base form (and like a noun): after a noun and before one of
# these particles they are verbs ("a sandwich cut in half", "a log split in two").
BARE_PARTICIPLES = _words("cut split")
PARTICIPLE_PARTICLES = _words("in into up open apart off down through")
# Two-word nouns whose head alone names something else ("a teddy bear" is no bear).
COMPOUND_CATEGORIES = {
    ("teddy", "bear"): "teddy bear",
    ("hot", "dog"): "hot dog",
    ("ice", "cream"): "ice cream",
    ("sea", "lion"): "sea lion",
    ("guinea", "pig"): "guinea pig",
    ("sea", "horse"): "seahorse",
    ("spider", "man"): "spider man",
}
# Two-token spellings joined before parsing.
JOINED = {("close", "up"): "closeup", ("pick", "up"): "pickup", ("t", "shirt"): "t-shirt", ("x", "ray"): "x-ray"}
