"""Scene description: the object groups and the scenery one item shows; its ground truth."""

from __future__ import annotations

import dataclasses

from .vocabulary import ON_WATER, POSITIONS


@dataclasses.dataclass(frozen=True)
class PlacedObject:
    """A group of ``count`` objects of one kind standing in one slot."""

    kind: str  # one of KINDS
    size: str  # "small" | "large"
    position: str  # "left" | "center" | "right"
    count: int = 1  # 1..3, drawn side by side in the slot
    material: str | None = None  # "stone" | "brick" | "wooden" where the kind has one
    state: str | None = None  # "ruined" | "anchored" | "bare" where the kind has one
    detail: object = None  # kind-specific: masts / arches / bands (int), roof or top style (str)

    @property
    def slot(self) -> int:
        return POSITIONS.index(self.position)

    def truth(self) -> dict:
        return {"kind": self.kind, "count": self.count, "size": self.size, "position": self.position,
                "material": self.material, "state": self.state, "detail": self.detail}


@dataclasses.dataclass(frozen=True)
class Scene:
    """Everything the caption talks about; the renderer draws exactly this."""

    objects: tuple  # tuple[PlacedObject, ...], ordered left to right
    backdrop: str | None = None  # one of BACKDROPS or None
    birds: int = 0  # number of birds drawn (0 = none)
    sky: str | None = None  # one of SKIES or None
    time: str = "day"  # one of TIMES
    season: str | None = None  # one of SEASONS or None
    weather: str | None = None  # one of WEATHERS or None
    technique: str = "engraving"  # one of TECHNIQUES
    main: int = 0  # index in objects of the group the caption names first
    sky_slot: int | None = None  # slot the sun or moon stands over
    phrasing: int = 0  # seed of the caption's sentence form and synonyms

    @property
    def night(self) -> bool:
        return self.time == "night" or self.sky in ("crescent moon", "full moon", "stars")

    def kinds(self) -> list:
        return [o.kind for o in self.objects]

    def ground(self) -> str:
        kinds = self.kinds()
        if any(k in ON_WATER for k in kinds):
            return "sea"
        return "river" if "bridge" in kinds else "land"


def truth_for(scene: Scene) -> dict:
    """The generator's ground truth for one item (stored beside its caption in metadata.jsonl)."""
    return {
        "main": scene.objects[scene.main].truth(),
        "objects": [o.truth() for o in scene.objects],
        "sky": scene.sky,
        "sky_position": None if scene.sky_slot is None else POSITIONS[scene.sky_slot],
        "time": scene.time,
        "season": scene.season,
        "weather": scene.weather,
        "technique": scene.technique,
        "backdrop": scene.backdrop,
        "birds": scene.birds,
    }
