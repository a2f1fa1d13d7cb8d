"""Vocabulary: what can be drawn, and the words that name it."""

from __future__ import annotations

# Object kinds that occupy a slot: (width / height, names as (singular, plural)).
# The first name is the plain one; every name belongs to exactly one kind.
_KIND_TABLE = {
    "ship": (0.85, ("ship", "ships"), ("vessel", "vessels"), ("sailing ship", "sailing ships"),
             ("frigate", "frigates"), ("galleon", "galleons"), ("barque", "barques"), ("brig", "brigs"),
             ("schooner", "schooners"), ("merchantman", "merchantmen")),
    "boat": (1.6, ("boat", "boats"), ("rowing boat", "rowing boats"), ("rowboat", "rowboats"),
             ("skiff", "skiffs"), ("dinghy", "dinghies"), ("punt", "punts"), ("wherry", "wherries")),
    "tree": (0.75, ("tree", "trees"), ("oak", "oaks"), ("elm", "elms"), ("broadleaf tree", "broadleaf trees"),
             ("chestnut", "chestnuts"), ("linden", "lindens"), ("sycamore", "sycamores")),
    "pine": (0.5, ("pine", "pines"), ("pine tree", "pine trees"), ("fir", "firs"), ("fir tree", "fir trees"),
             ("conifer", "conifers"), ("spruce", "spruces"), ("larch", "larches")),
    "cypress": (0.3, ("cypress", "cypresses"), ("cypress tree", "cypress trees"), ("poplar", "poplars")),
    "palm": (0.75, ("palm", "palms"), ("palm tree", "palm trees"), ("date palm", "date palms")),
    "bush": (1.3, ("bush", "bushes"), ("shrub", "shrubs"), ("thornbush", "thornbushes"), ("hedge", "hedges")),
    "house": (0.9, ("house", "houses"), ("cottage", "cottages"), ("dwelling", "dwellings"),
              ("farmhouse", "farmhouses"), ("homestead", "homesteads"), ("residence", "residences"),
              ("villa", "villas")),
    "hut": (0.95, ("hut", "huts"), ("hovel", "hovels"), ("shack", "shacks"), ("cabin", "cabins"),
            ("shelter", "shelters"), ("bothy", "bothies")),
    "mountain": (1.25, ("mountain", "mountains"), ("peak", "peaks"), ("summit", "summits"), ("alp", "alps")),
    "rock": (1.3, ("rock", "rocks"), ("boulder", "boulders"), ("outcrop", "outcrops"), ("stone block", "stone blocks"),
             ("crag", "crags")),
    "figure": (0.4, ("figure", "figures"), ("traveller", "travellers"), ("wanderer", "wanderers"),
               ("walker", "walkers"), ("wayfarer", "wayfarers"), ("pilgrim", "pilgrims"), ("person", "people"),
               ("rambler", "ramblers"), ("passer-by", "passers-by")),
    "statue": (0.42, ("statue", "statues"), ("sculpture", "sculptures"), ("effigy", "effigies"),
               ("monument", "monuments")),
    "windmill": (0.8, ("windmill", "windmills"), ("mill", "mills"), ("post mill", "post mills")),
    "church": (0.8, ("church", "churches"), ("chapel", "chapels"), ("kirk", "kirks"),
               ("parish church", "parish churches"), ("abbey", "abbeys"), ("priory", "priories")),
    "bridge": (2.0, ("bridge", "bridges"), ("footbridge", "footbridges"), ("viaduct", "viaducts")),
    "castle": (1.0, ("castle", "castles"), ("fortress", "fortresses"), ("fort", "forts"),
               ("stronghold", "strongholds"), ("citadel", "citadels"), ("chateau", "chateaux")),
    "tower": (0.36, ("tower", "towers"), ("watchtower", "watchtowers"), ("round tower", "round towers"),
              ("keep", "keeps"), ("belvedere", "belvederes"), ("donjon", "donjons")),
    "lighthouse": (0.42, ("lighthouse", "lighthouses"), ("beacon", "beacons"), ("pharos", "pharoses")),
    "obelisk": (0.26, ("obelisk", "obelisks"), ("monolith", "monoliths")),
    "pyramid": (1.4, ("pyramid", "pyramids"), ("pyramidal tomb", "pyramidal tombs")),
    "column": (0.3, ("column", "columns"), ("pillar", "pillars"), ("colonnette", "colonnettes")),
    "gateway": (0.9, ("gateway", "gateways"), ("archway", "archways"), ("gate", "gates"), ("portal", "portals"),
                ("gatehouse", "gatehouses")),
    "haystack": (1.0, ("haystack", "haystacks"), ("hayrick", "hayricks"), ("rick", "ricks"),
                 ("haycock", "haycocks"), ("stook", "stooks")),
    "tent": (1.1, ("tent", "tents"), ("pavilion", "pavilions"), ("marquee", "marquees"), ("bivouac", "bivouacs")),
    "cross": (0.45, ("cross", "crosses"), ("wayside cross", "wayside crosses"), ("crucifix", "crucifixes"),
              ("calvary", "calvaries")),
    "well": (0.8, ("well", "wells"), ("wellhead", "wellheads"), ("draw well", "draw wells")),
    "signpost": (0.55, ("signpost", "signposts"), ("fingerpost", "fingerposts"), ("guidepost", "guideposts"),
                 ("waymarker", "waymarkers")),
    "tombstone": (0.6, ("tombstone", "tombstones"), ("gravestone", "gravestones"), ("headstone", "headstones"),
                  ("grave marker", "grave markers"), ("stele", "stelae")),
    "pagoda": (0.65, ("pagoda", "pagodas"), ("tiered temple", "tiered temples")),
}
KINDS = tuple(_KIND_TABLE)
ASPECT = {kind: row[0] for kind, row in _KIND_TABLE.items()}
KIND_NAMES = {kind: row[1:] for kind, row in _KIND_TABLE.items()}
WIDTH_ALLOWANCE = {"mountain": 1.15, "bridge": 1.3, "house": 1.05, "castle": 1.05, "boat": 1.2, "pyramid": 1.15,
                    "rock": 1.1, "bush": 1.1}
ON_WATER = ("ship", "boat")
TALL = ("tower", "lighthouse", "obelisk", "column", "cypress", "pine", "church", "windmill", "statue", "pagoda")
# Words that are true of every drawing of a kind (a fluted column, a thatched hut, ...).
EPITHETS = {
    "ship": ("rigged", "ocean-going", "seagoing", "square-rigged"),
    "boat": ("open", "oared", "clinker-built"),
    "tree": ("spreading", "leafy", "broad-crowned", "shady"),
    "pine": ("evergreen", "tiered", "needled"),
    "cypress": ("slender", "columnar", "flame-shaped", "dark"),
    "palm": ("feathery", "fronded", "tropical", "curving"),
    "bush": ("rounded", "dense", "low-growing"),
    "house": ("chimneyed", "two-windowed", "pitched-roofed", "rustic"),
    "hut": ("thatched", "humble", "primitive"),
    "mountain": ("rugged", "jagged", "steep", "snow-capped"),
    "rock": ("craggy", "weathered", "massive", "rough"),
    "figure": ("cloaked", "lone", "striding", "coated"),
    "statue": ("pedestalled", "carved", "sculpted"),
    "windmill": ("four-sailed", "sail-driven", "working"),
    "church": ("steepled", "spired", "gothic", "arch-windowed"),
    "bridge": ("humped", "low", "sturdy"),
    "castle": ("walled", "fortified", "medieval", "gated"),
    "tower": ("round", "cylindrical", "defensive"),
    "lighthouse": ("tapering", "coastal", "lantern-topped"),
    "obelisk": ("tapering", "pointed", "four-sided", "commemorative"),
    "pyramid": ("four-sided", "triangular", "ancient"),
    "column": ("fluted", "classical", "capitalled"),
    "gateway": ("arched", "vaulted", "monumental", "corniced"),
    "haystack": ("domed", "rounded", "heaped"),
    "tent": ("pitched", "peaked", "canvas", "guyed"),
    "cross": ("upright", "plinthed", "commemorative"),
    "well": ("roofed", "covered", "windlassed"),
    "signpost": ("two-armed", "pointing", "roadside"),
    "tombstone": ("rounded", "inscribed", "upright", "lettered"),
    "pagoda": ("three-tiered", "tiered", "multi-roofed", "eastern"),
}

SIZES = ("small", "large")
SIZE_WORDS = {
    "small": ("small", "little", "modest", "diminutive", "tiny", "slight", "petite", "miniature", "compact",
              "undersized", "wee", "dwarfish"),
    "large": ("large", "big", "great", "grand", "huge", "massive", "imposing", "mighty", "immense", "enormous",
              "vast", "colossal", "sizeable", "monumental", "majestic"),
}
TALL_SIZE_WORDS = {"small": ("short", "low", "stubby", "squat", "stunted"),
                    "large": ("tall", "lofty", "towering", "soaring", "high", "statuesque")}

POSITIONS = ("left", "center", "right")
POSITION_WORDS = {
    "left": ("on the left", "at the left", "on the left-hand side", "at the far left", "on the left side",
             "at left", "at the left of the sheet", "on the left of the plate", "at the left edge"),
    "center": ("in the centre", "in the center", "in the middle", "at the centre", "at center", "centre stage",
               "in the middle of the sheet", "at the centre of the plate", "in mid-picture"),
    "right": ("on the right", "at the right", "on the right-hand side", "at the far right", "on the right side",
              "at right", "at the right of the sheet", "on the right of the plate", "at the right edge"),
}

COUNT_WORDS = {
    1: ("a", "one", "a single", "a lone", "a solitary", "an isolated"),
    2: ("two", "a pair of", "a couple of", "twin", "a brace of"),
    3: ("three", "a trio of", "a group of three", "a row of three", "a cluster of three", "a set of three"),
}

# Materials, states and details each change the drawing of the kinds they apply to.
MATERIALS = {
    "house": ("stone", "brick", "wooden"),
    "hut": ("stone", "wooden"),
    "tower": ("stone", "brick"),
    "windmill": ("stone", "brick", "wooden"),
    "church": ("stone", "brick"),
    "bridge": ("stone", "brick", "wooden"),
    "lighthouse": ("stone", "brick"),
    "well": ("stone", "brick"),
    "gateway": ("stone", "brick"),
}
MATERIAL_WORDS = {
    "stone": ("stone", "masonry", "ashlar", "stone-built", "dressed-stone", "freestone", "blockwork"),
    "brick": ("brick", "brick-built", "redbrick", "brickwork", "coursed-brick"),
    "wooden": ("wooden", "timber", "timbered", "plank", "weatherboarded", "clapboard", "board-built"),
}
_RUINABLE = ("house", "hut", "tower", "windmill", "church", "castle", "lighthouse", "gateway", "column", "obelisk",
             "bridge", "well", "pagoda", "statue")
STATES = {kind: ("ruined",) for kind in _RUINABLE}
STATES.update({"ship": ("anchored",), "tree": ("bare",)})
STATE_WORDS = {
    "ruined": ("ruined", "crumbling", "derelict", "tumbledown", "broken", "dilapidated", "decayed", "shattered",
               "ruinous", "fallen", "damaged", "collapsing", "half-ruined", "wrecked"),
    "anchored": ("anchored", "moored", "unrigged", "furled", "idle", "becalmed"),
    "bare": ("bare", "leafless", "bare-branched", "barren", "skeletal", "naked", "dead"),
}
DETAILS = {
    "ship": (1, 2, 3),  # masts
    "bridge": (2, 3),  # arches (not for wooden bridges)
    "tower": ("battlemented", "conical"),
    "castle": ("battlemented", "turreted"),
    "house": ("gabled", "hipped"),
    "figure": (None, "staff", "hat"),
    "lighthouse": (2, 3),  # dark bands
}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Scenery.
SKIES = ("sun", "crescent moon", "full moon", "stars", "clouds")
TIMES = ("day", "dawn", "dusk", "night")  # dawn: a low sun on the left; dusk: a low sun on the right
SEASONS = ("winter", "autumn", "summer")  # white ground and bare trees / falling leaves / tall grass
WEATHERS = ("rain", "storm", "snow", "mist")
TECHNIQUES = ("engraving", "etching", "woodcut", "aquatint", "mezzotint", "lithograph")
BACKDROPS = ("mountains", "hills", "mountain")
# Outline width and hatch spacing of each technique, relative to a line engraving.
TECHNIQUE_LINES = {"engraving": (1.0, 1.0), "etching": (0.6, 0.8), "woodcut": (2.0, 1.6), "aquatint": (1.0, 1.0),
                    "mezzotint": (1.0, 1.0), "lithograph": (1.3, 1.1)}

TECHNIQUE_WORDS = {
    "engraving": ("engraving", "line engraving", "copperplate engraving", "copper engraving", "burin engraving",
                  "engraved plate", "steel engraving", "intaglio engraving", "copperplate print"),
    "etching": ("etching", "etched plate", "etched print", "needle etching", "bitten etching", "hard-ground etching"),
    "woodcut": ("woodcut", "woodblock print", "woodcut print", "block print", "relief print", "woodblock",
                "xylograph"),
    "aquatint": ("aquatint", "aquatint print", "aquatint plate", "resin-ground aquatint", "sugar-lift aquatint"),
    "mezzotint": ("mezzotint", "mezzotint print", "mezzotint plate", "rocked mezzotint", "scraped mezzotint"),
    "lithograph": ("lithograph", "lithographic print", "crayon lithograph", "planographic print", "chalk lithograph"),
}
TECHNIQUE_MANNER = {
    "engraving": ("in crisp hatched lines", "with close parallel hatching", "in precise lines",
                  "with regular hatching", "in clean, incised lines", "with disciplined, even hatching",
                  "in sharp, tapering strokes", "with meticulous linework"),
    "etching": ("in fine, delicate lines", "in thin lines", "with light, fine hatching", "in spare, slender lines",
                "in wiry, nervous lines", "with airy, open hatching", "in faint hairlines", "with a light touch"),
    "woodcut": ("in bold black lines", "in heavy, coarse lines", "with thick strokes", "in strong, broad lines",
                "in blunt, chunky cuts", "with emphatic contours", "in stark, robust lines", "with weighty outlines"),
    "aquatint": ("in soft grey tones", "with tonal washes", "in flat grey tone", "with grainy tone",
                 "in smooth, even tints", "with pale tonal areas", "in muted half-tones", "with watery tonal shading"),
    "mezzotint": ("in deep, velvety darks", "on a dark ground", "in rich dark tones", "with a shadowy ground",
                  "in sombre, burnished tones", "with gloomy, saturated darkness", "in dusky blacks",
                  "with luminous forms against darkness"),
    "lithograph": ("in soft grey crayon", "in pale grey lines", "with a grey, chalky line", "in greyish ink",
                   "in muted, silvery greys", "with a soft, grainy stroke", "in subdued pencil-like lines",
                   "with a hazy grey contour"),
}
SKY_WORDS = {
    ("day", "sun"): ("under a bright sun", "in full sun", "beneath a blazing sun", "on a sunny day",
                     "under a midday sun", "in sunshine", "beneath a radiant sun", "in brilliant sunlight",
                     "under a noonday sun", "in the glare of the sun", "beneath a shining sun", "in warm sunlight"),
    ("day", "clouds"): ("under a cloudy sky", "beneath scudding clouds", "under passing clouds",
                        "with clouds overhead", "on a cloudy day", "beneath billowing clouds", "under drifting clouds",
                        "beneath puffy cumulus", "under a clouded sky", "with rounded clouds above"),
    ("day", None): ("by day", "in daylight", "on a clear day", "under an open sky", "in the daytime",
                    "under an empty sky", "on a cloudless day", "in plain daylight", "beneath a pale sky"),
    ("dawn", "sun"): ("at dawn", "at sunrise", "at daybreak", "in the early morning", "as the sun rises",
                      "at first light", "at break of day", "as morning breaks", "with the rising sun",
                      "at cockcrow", "as the day begins"),
    ("dusk", "sun"): ("at dusk", "at sunset", "at sundown", "in the evening", "as the sun sets",
                      "at the close of day", "at eventide", "with the setting sun", "as evening falls",
                      "at day's end", "in the late evening"),
    ("night", "crescent moon"): ("under a crescent moon", "by the light of a crescent moon",
                                 "beneath a sickle moon", "at night under a crescent moon", "under a thin moon",
                                 "beneath a waxing crescent", "under a horned moon"),
    ("night", "full moon"): ("under a full moon", "by the light of a full moon", "beneath a round full moon",
                             "at night under a full moon", "under a bright round moon", "beneath a shining full moon",
                             "in full moonlight"),
    ("night", "stars"): ("under the stars", "beneath a starry sky", "on a starlit night", "at night under the stars",
                         "beneath twinkling stars", "under a star-strewn sky", "on a moonless, starry night",
                         "beneath the constellations"),
}
WEATHER_WORDS = {
    "rain": ("in the rain", "in steady rain", "during a shower", "in a downpour", "as rain falls",
             "in pouring rain", "amid slanting rain", "in a drizzle", "in wet weather", "under falling rain"),
    "storm": ("in a storm", "during a thunderstorm", "as lightning strikes", "in a tempest", "in stormy weather",
              "amid thunder and lightning", "in a violent gale", "during a squall", "in driving rain and lightning",
              "as a storm breaks"),
    "snow": ("in falling snow", "during a snowfall", "as snow falls", "amid drifting snowflakes", "in a flurry",
             "in a blizzard", "under swirling snow", "as flakes descend"),
    "mist": ("in the mist", "in fog", "in a haze", "through drifting mist", "in foggy weather", "amid low vapour",
             "in a thin haze", "in murky weather", "through veils of mist"),
}
SEASON_WORDS = {
    "winter": ("in winter", "in deep winter", "in wintry weather", "on snowy ground", "in the frozen season",
               "amid snowbound fields", "in midwinter", "on a frosty day", "in the cold season", "on white ground"),
    "autumn": ("in autumn", "in the fall", "as leaves fall", "among falling leaves", "in autumnal weather",
               "in late autumn", "as foliage drops", "amid fluttering leaves", "in the harvest season"),
    "summer": ("in summer", "in high summer", "in midsummer", "amid tall grass", "among summer grasses",
               "in the summertime", "amid long grasses", "in the warm season", "among lush tussocks"),
}
BACKDROP_WORDS = {
    "mountains": ("mountains in the distance", "a mountain range beyond", "with distant peaks behind",
                  "before a range of mountains", "a line of far mountains", "a sierra on the horizon",
                  "a chain of mountains behind", "against a mountainous skyline"),
    "hills": ("hills in the distance", "rolling hills beyond", "low hills behind", "before a line of hills",
              "gentle hills on the horizon", "undulating downs behind", "a hilly skyline beyond",
              "softly rounded hills behind"),
    "mountain": ("a mountain behind", "a great mountain beyond", "a lone peak rising behind",
                 "a solitary mountain in the background"),
}
SETTING_WORDS = {
    "sea": ("at sea", "on the sea", "off the coast", "on open water", "in a bay", "by the shore", "along the coast",
            "on choppy waves", "in an estuary", "on the ocean", "in coastal waters", "on a rippling sea"),
    "river": ("on a river", "over a stream", "by the river", "along the riverbank", "on the water",
              "over a brook", "across a creek", "above flowing water", "by the riverside"),
    "land": ("in open country", "in a meadow", "on a plain", "in the countryside", "in a field", "on the heath",
             "on level ground", "on flat land", "in pastureland", "on the moor", "in farmland", "on grassland"),
    "valley": ("in a valley", "among the hills", "in upland country", "in a dale", "in a glen", "in the highlands"),
}
TITLE_WORDS = {
    "sea": ("Coastal view", "Seascape", "Marine view", "Shore scene", "Marine piece", "Maritime scene",
            "Harbour approach", "Waterside view"),
    "river": ("River landscape", "River view", "Riverside scene", "Riverscape", "View of a crossing"),
    "night": ("Nocturne", "Night piece", "Night scene", "Moonlight study", "Evening quiet"),
    "winter": ("Winter landscape", "Winter scene", "Winter view", "Snowscape", "Frozen landscape"),
    "storm": ("The storm", "Storm scene", "Stormy landscape", "Thunder over the land", "Tempest"),
    "ruins": ("Ruins", "Landscape with ruins", "Picturesque ruins", "Study of ruins", "Antiquities", "Remains",
              "Memento of decay"),
    "any": ("Landscape", "View", "Study", "Pastoral scene", "Rural view", "Capriccio", "Prospect", "Vista",
            "Scene", "Sketch", "Vignette", "Composition", "Plate", "Picturesque view", "Topographical view",
            "Untitled", "Sheet from an album", "Souvenir", "Impression", "Illustration", "Frontispiece",
            "Tailpiece", "Headpiece", "Idyll", "Veduta", "Panorama", "Tableau", "Romantic landscape",
            "Arcadian scene", "Landscape study", "Travel sketch", "Record of a journey", "Antiquarian view",
            "Miscellaneous subject", "Proof impression", "Collector's print", "Loose leaf", "Book plate",
            "Exercise in perspective", "Specimen plate", "Memorandum", "Recollection", "Rustic motif"),
}
BORDER_WORDS = ("within a ruled border", "inside a single ruled line", "with a thin border line",
                 "framed by a plain rule", "with a ruled margin", "within a narrow frame line",
                 "bounded by a printed outline", "with a blank paper margin")
VERBS = {  # (singular, plural)
    "water": (("sails", "sail"), ("rides", "ride"), ("floats", "float"), ("drifts", "drift"), ("glides", "glide"),
              ("cruises", "cruise"), ("bobs", "bob")),
    "anchored": (("lies at anchor", "lie at anchor"), ("rests", "rest"), ("waits", "wait"), ("idles", "idle")),
    "walk": (("walks", "walk"), ("strolls", "stroll"), ("wanders", "wander"), ("pauses", "pause"),
             ("roams", "roam"), ("treads", "tread"), ("lingers", "linger"), ("travels", "travel")),
    "grow": (("stands", "stand"), ("grows", "grow"), ("spreads", "spread"), ("flourishes", "flourish"),
             ("thrives", "thrive")),
    "tall": (("rises", "rise"), ("soars", "soar"), ("stands", "stand"), ("looms", "loom"), ("climbs", "climb"),
             ("reaches skyward", "reach skyward")),
    "span": (("spans the water", "span the water"), ("stretches", "stretch"), ("leads over", "lead over"),
             ("straddles the stream", "straddle the stream")),
    "lie": (("lies", "lie"), ("sits", "sit"), ("rests", "rest"), ("squats", "squat"), ("hunkers", "hunker")),
    "stand": (("stands", "stand"), ("sits", "sit"), ("rises", "rise"), ("is seen", "are seen"),
              ("appears", "appear"), ("is placed", "are placed"), ("is set", "are set"), ("is shown", "are shown"),
              ("is visible", "are visible"), ("is depicted", "are depicted"), ("is drawn", "are drawn"),
              ("is situated", "are situated"), ("stands out", "stand out"), ("is positioned", "are positioned"),
              ("is located", "are located"), ("is portrayed", "are portrayed"), ("is represented", "are represented"),
              ("is pictured", "are pictured"), ("remains", "remain"), ("presides", "preside")),
}
VERB_CLASS = {"ship": "water", "boat": "water", "figure": "walk", "tree": "grow", "pine": "grow", "palm": "grow",
               "bush": "grow", "cypress": "tall", "tower": "tall", "lighthouse": "tall", "obelisk": "tall",
               "column": "tall", "mountain": "tall", "bridge": "span", "rock": "lie", "haystack": "lie",
               "tombstone": "lie"}

