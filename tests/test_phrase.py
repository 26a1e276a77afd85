"""Caption -> phrase -> category on BLIP-style captions (a table of expected answers, written by hand).

Each row: caption, the phrase handed to GroundingDINO, the category (head noun, singular, lower case).
"""

from __future__ import annotations

import pytest

from engine.labeling.phrase import Phrase, extract_phrase, singular

CAPTIONS = [
    ('a pair of scissors on a white background', 'scissors', 'scissors'),
    ('a tall building with a clock on top of it', 'tall building', 'building'),
    ('a gold wedding ring on a black background', 'gold wedding ring', 'ring'),
    ('a framed painting hanging on a wall', 'framed painting', 'painting'),
    ('araffe sitting on a bench in a park', 'bench', 'bench'),
    ('a bus driving down a city street', 'bus', 'bus'),
    ('a camera lens on a wooden table', 'camera lens', 'lens'),
    ('a cactus in a pot on a window sill', 'cactus', 'cactus'),
    ('a herd of elephants walking across a dirt road', 'elephants', 'elephant'),
    ('a 3d rendering of a robot with a gun', 'robot', 'robot'),
    ("a child's drawing of a dog", 'dog', 'dog'),
    ('an aerial view of a city with a river', 'city', 'city'),
    ('there is a dog that is sitting on the grass', 'dog', 'dog'),
    ('there is a small bird perched on a branch', 'small bird', 'bird'),
    ('there are two horses standing in a field', 'horses', 'horse'),
    ('there is a red fire hydrant on the side of the road', 'red fire hydrant', 'hydrant'),
    ('arafed man in a suit and tie standing in front of a building', 'man', 'man'),
    ('arafed woman with long hair and a white shirt', 'woman', 'woman'),
    ('araffe standing in a field with a giraffe in the background', 'field', 'field'),
    ('arafed view of a beach with a boat in the water', 'beach', 'beach'),
    ('a close up of a flower with a bee on it', 'flower', 'flower'),
    ('a close up of a person holding a cell phone', 'person', 'person'),
    ('a close-up of a ladybug on a leaf', 'ladybug', 'ladybug'),
    ("a closeup of a cat's face", 'face', 'face'),
    ('an aerial view of a large ship in the ocean', 'large ship', 'ship'),
    ('an aerial view of a highway with cars', 'highway', 'highway'),
    ('a black and white photo of a man with a hat', 'man', 'man'),
    ('a blurry photo of a dog running in the snow', 'dog', 'dog'),
    ('an old photo of a steam train', 'steam train', 'train'),
    ('a painting of a woman holding a baby', 'woman', 'woman'),
    ('a drawing of a bird on a branch', 'bird', 'bird'),
    ('a cartoon of a cat with a fish in its mouth', 'cat', 'cat'),
    ('an illustration of a rocket flying through space', 'rocket', 'rocket'),
    ('a 3d illustration of a red heart', 'red heart', 'heart'),
    ('a 3d model of a house with a garden', 'house', 'house'),
    ('a silhouette of a man standing on a hill at sunset', 'man', 'man'),
    ('a pair of shoes sitting on top of a wooden floor', 'shoes', 'shoe'),
    ('a group of people standing around a table', 'people', 'person'),
    ('a herd of sheep grazing on a lush green hillside', 'sheep', 'sheep'),
    ('a bunch of bananas hanging from a tree', 'bananas', 'banana'),
    ('a slice of pizza on a paper plate', 'pizza', 'pizza'),
    ('a piece of chocolate cake on a plate', 'chocolate cake', 'cake'),
    ('a stack of books on a desk', 'books', 'book'),
    ('a row of houses along a canal', 'houses', 'house'),
    ('a set of keys on a wooden table', 'keys', 'key'),
    ('a lot of cars parked in a parking lot', 'cars', 'car'),
    ('a couple of dogs laying on a couch', 'dogs', 'dog'),
    ('a flock of birds flying over the ocean', 'birds', 'bird'),
    ('a school of fish swimming in the ocean', 'fish', 'fish'),
    ('a bowl of fruit on a kitchen counter', 'bowl', 'bowl'),
    ('a cup of coffee with a heart drawn in the foam', 'cup', 'cup'),
    ('a glass of wine on a table', 'glass', 'glass'),
    ('a teddy bear sitting on a bed', 'teddy bear', 'teddy bear'),
    ('a fire hydrant on a sidewalk', 'fire hydrant', 'hydrant'),
    ('a stop sign on the corner of a street', 'stop sign', 'sign'),
    ('a cell phone sitting on top of a table', 'cell phone', 'phone'),
    ('a tennis racket and a ball on a court', 'tennis racket', 'racket'),
    ('a wooden chair in an empty room', 'wooden chair', 'chair'),
    ('a large passenger jet flying through a blue sky', 'large passenger jet', 'jet'),
    ('a yellow school bus parked in a parking lot', 'yellow school bus', 'bus'),
    ('a double decker bus driving down the street', 'double decker bus', 'bus'),
    ('a painting of a vase of flowers', 'vase', 'vase'),
    ("a woman's hand holding a red apple", 'hand', 'hand'),
    ("a man's shoe on a white background", 'shoe', 'shoe'),
    ("a dog's head sticking out of a car window", 'head', 'head'),
    ("a bird's eye view of a soccer field", 'soccer field', 'field'),
    ('the back of a red truck', 'red truck', 'truck'),
    ('the inside of a church with stained glass windows', 'church', 'church'),
    ('a 3d printed vase on a table', '3d printed vase', 'vase'),
    ('two mice eating a piece of cheese', 'mice', 'mouse'),
    ('a pile of leaves on the ground', 'leaves', 'leaf'),
    ('three people walking down a snowy road', 'people', 'person'),
    ('a sheep standing in a field of grass', 'sheep', 'sheep'),
    ('an octopus swimming in an aquarium', 'octopus', 'octopus'),
    ('a gas station at night', 'gas station', 'station'),
    ('a rare species of frog on a leaf', 'frog', 'frog'),
    ('a lens on a black background', 'lens', 'lens'),
    ('a cactus with pink flowers', 'cactus', 'cactus'),
    ('a walrus laying on a rock', 'walrus', 'walrus'),
    ('a hippopotamus in the water', 'hippopotamus', 'hippopotamus'),
    ('a bonsai tree in a pot', 'bonsai tree', 'tree'),
    ('a corgi dog sitting on a couch', 'corgi dog', 'dog'),
    ('a golden retriever laying on the grass', 'golden retriever', 'retriever'),
    ('an orange cat laying on a bed', 'orange cat', 'cat'),
    ('a brown and white dog running on the beach', 'brown and white dog', 'dog'),
    ('a red and white lighthouse on a cliff', 'red and white lighthouse', 'lighthouse'),
    ('a white toilet sitting in a bathroom', 'white toilet', 'toilet'),
    ('a kitchen with wooden cabinets and a stove', 'kitchen', 'kitchen'),
    ('a living room with a couch and a tv', 'living room', 'room'),
    ('a dining table with chairs around it', 'dining table', 'table'),
    ('a swimming pool in the backyard of a house', 'swimming pool', 'pool'),
    ('a man wearing a hat and sunglasses', 'man', 'man'),
    ('a woman wearing glasses and a scarf', 'woman', 'woman'),
    ('a pair of glasses on a book', 'glasses', 'glasses'),
    ('a pair of jeans hanging on a clothesline', 'jeans', 'jeans'),
    ('a little girl playing with a toy', 'little girl', 'girl'),
    ('a baby elephant walking next to its mother', 'baby elephant', 'elephant'),
    ('a young boy riding a skateboard down a ramp', 'young boy', 'boy'),
    ('a man riding a wave on top of a surfboard', 'man', 'man'),
    ('a bird flying over a body of water', 'bird', 'bird'),
    ('a giraffe eating leaves from a tree', 'giraffe', 'giraffe'),
    ('a zebra standing in the middle of a field', 'zebra', 'zebra'),
    ('a cat laying on top of a laptop computer', 'cat', 'cat'),
    ('a laptop computer sitting on top of a desk', 'laptop computer', 'computer'),
    ('a plate of food with broccoli and rice', 'plate', 'plate'),
    ('a hot dog with ketchup and mustard', 'hot dog', 'hot dog'),
    ('a bowl of ice cream with a spoon', 'bowl', 'bowl'),
    ('a vase filled with red roses', 'vase', 'vase'),
    ('a cake with candles on it', 'cake', 'cake'),
    ('a birthday cake with the words happy birthday', 'birthday cake', 'cake'),
    ('a street sign that says main street', 'street sign', 'sign'),
    ('a red car parked in front of a house', 'red car', 'car'),
    ('a motorcycle parked on the side of the road', 'motorcycle', 'motorcycle'),
    ('a sailboat in the middle of the ocean', 'sailboat', 'sailboat'),
    ('a lighthouse on a rocky shore', 'lighthouse', 'lighthouse'),
    ('the moon in the night sky', 'moon', 'moon'),
    ('a full moon in a dark sky', 'full moon', 'moon'),
    ('a close up of a butterfly on a flower', 'butterfly', 'butterfly'),
    ('a close up of a snake on the ground', 'snake', 'snake'),
    ('an apple on a wooden table', 'apple', 'apple'),
    ('an iphone on a desk next to a keyboard', 'iphone', 'iphone'),
    ('a person holding an umbrella in the rain', 'person', 'person'),
    ('a man and a woman posing for a picture', 'man', 'man'),
    ('a knife and fork on a plate', 'knife', 'knife'),
    ('a statue of a man on a horse', 'statue', 'statue'),
    ('a bronze statue of a lion', 'bronze statue', 'statue'),
    ('a woman in a wedding dress', 'woman', 'woman'),
    ('a boy in a red shirt holding a ball', 'boy', 'boy'),
    ('a cat sitting in a cardboard box', 'cat', 'cat'),
    ('a dog sits on a couch', 'dog', 'dog'),
    ('a cat sleeps on a pillow', 'cat', 'cat'),
    ('two dogs play in the snow', 'dogs', 'dog'),
    ('a bird stands on a rock', 'bird', 'bird'),
    ('a vintage car parked on a street', 'vintage car', 'car'),
    ('a heart shaped cookie on a plate', 'heart shaped cookie', 'cookie'),
    ('a chocolate covered strawberry', 'chocolate covered strawberry', 'strawberry'),
    ('a stuffed animal on a bed', 'stuffed animal', 'animal'),
    ('a carved pumpkin with a candle', 'carved pumpkin', 'pumpkin'),
    ('a broken window in an old building', 'broken window', 'window'),
    ('an old building with a clock tower', 'old building', 'building'),
    ('a church building on a hill', 'church building', 'building'),
    ('a painting on a wall in a museum', 'painting', 'painting'),
    ('a woman painting a picture on a canvas', 'woman', 'woman'),
    ('a man drawing on a piece of paper', 'man', 'man'),
    ('a diamond ring in a box', 'diamond ring', 'ring'),
    ("a ring on a woman's finger", 'ring', 'ring'),
    ('a kite flying in the sky', 'kite', 'kite'),
    ('there is a large white bird standing in the water', 'large white bird', 'bird'),
    ('this is an image of a dog', 'dog', 'dog'),
    ('it is a picture of a red rose', 'red rose', 'rose'),
    ('a view of a mountain range from a plane', 'mountain range', 'range'),
    ('a view of the eiffel tower from the river', 'eiffel tower', 'tower'),
    ('a scenic view of a lake with mountains', 'lake', 'lake'),
    ('a picture of a tiger in the jungle', 'tiger', 'tiger'),
    ('a portrait of an old man with a beard', 'old man', 'man'),
    ('a selfie of a woman with a dog', 'woman', 'woman'),
    ('a screenshot of a video game', 'video game', 'game'),
    ('a logo for a coffee shop', 'logo', 'logo'),
    ('a sign with an arrow pointing to the right', 'sign', 'sign'),
    ('a herd of cattle grazing in a field', 'cattle', 'cattle'),
    ('a flock of geese flying', 'geese', 'goose'),
    ('a pack of wolves in the snow', 'wolves', 'wolf'),
    ('a bouquet of flowers in a vase', 'flowers', 'flower'),
    ('a field of sunflowers under a blue sky', 'sunflowers', 'sunflower'),
    ('a crowd of people at a concert', 'people', 'person'),
    ('a family of ducks swimming in a pond', 'ducks', 'duck'),
    ('a bunch of grapes on a vine', 'grapes', 'grape'),
    ('a slice of bread with butter', 'bread', 'bread'),
    ('a loaf of bread on a cutting board', 'bread', 'bread'),
    ('a cutting board with vegetables', 'cutting board', 'board'),
    ('a young woman wearing a t-shirt', 'young woman', 'woman'),
    ('a white t-shirt with a logo', 'white t-shirt', 't-shirt'),
    ('a pickup truck parked in a driveway', 'pickup truck', 'truck'),
    ('a man in a black jacket riding a bicycle', 'man', 'man'),
    ('a bicycle leaning against a wall', 'bicycle', 'bicycle'),
    ('an elephant standing next to a tree', 'elephant', 'elephant'),
    ('two giraffes standing next to each other', 'giraffes', 'giraffe'),
    ('many boats are docked in the harbor', 'boats', 'boat'),
    ('several cows laying down in a grassy field', 'cows', 'cow'),
    ('one of the cats is sleeping on the bed', 'cats', 'cat'),
    ('a couple sitting on a bench in the park', 'couple', 'couple'),
    ('a woman and her dog walking on the beach', 'woman', 'woman'),
]


def test_the_table_is_large_and_has_no_duplicates():
    assert len(CAPTIONS) >= 100
    assert len({caption for caption, _, _ in CAPTIONS}) == len(CAPTIONS)


@pytest.mark.parametrize("caption, phrase, category", CAPTIONS)
def test_blip_style_captions(caption, phrase, category):
    assert extract_phrase(caption) == Phrase(phrase, category)


@pytest.mark.parametrize(
    "word, expected",
    [
        ("dogs", "dog"), ("bus", "bus"), ("buses", "bus"), ("lens", "lens"), ("lenses", "lens"),
        ("cactus", "cactus"), ("cacti", "cactus"), ("octopus", "octopus"), ("gas", "gas"), ("species", "species"),
        ("people", "person"), ("mice", "mouse"), ("leaves", "leaf"), ("sheep", "sheep"), ("geese", "goose"),
        ("children", "child"), ("wolves", "wolf"), ("knives", "knife"), ("potatoes", "potato"), ("berries", "berry"),
        ("glass", "glass"), ("dress", "dress"), ("grass", "grass"), ("scissors", "scissors"), ("jeans", "jeans"),
        ("corgis", "corgi"), ("hummus", "hummus"), ("teeth", "tooth"), ("cattle", "cattle"),
    ],
)
def test_singular(word, expected):
    assert singular(word) == expected


@pytest.mark.parametrize(
    "caption, phrase, category",
    [
        ("", "", ""),
        ("!!! ???", "", ""),
        ("a photo of", "", ""),  # a framing noun that frames nothing names no object
        ("[unused3] [unused4]", "", ""),
        ("of the", "", ""),
        ("arafed", "", ""),
        ("a pair of", "pair", "pair"),  # a partitive with nothing after it is the object itself
        ("A Photo Of A Red-Car.", "red car", "car"),
        ("a child ' s drawing", "drawing", "drawing"),  # BLIP's tokenizer spacing
        ("two glasses of wine", "glasses", "glass"),
        ("a red and blue abstract painting", "blue abstract painting", "painting"),  # cut to 4 words
        ("red car", "red car", "car"),  # human annotations are bare phrases
    ],
)
def test_edge_cases(caption, phrase, category):
    assert extract_phrase(caption) == Phrase(phrase, category)


def test_max_words_keeps_the_words_before_the_head():
    assert extract_phrase("a big old rusty red metal car", max_words=3) == Phrase("red metal car", "car")


def test_extraction_is_deterministic_and_refuses_non_text():
    assert {extract_phrase("a herd of elephants walking") for _ in range(3)} == {Phrase("elephants", "elephant")}
    with pytest.raises(TypeError, match="caption must be a str"):
        extract_phrase(None)
