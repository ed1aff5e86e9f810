"""How a selection's frames were cropped to the face, as a value that can be recorded and read
back: which detector found faces, and how many clips were cropped with the boxes their database
ships instead. Serving reads it to crop new clips as the study's were (new clips have no database
boxes: they are cropped with a detector, and the difference is said).
"""

from __future__ import annotations

from dataclasses import dataclass

NONE = "none"
# Tags a run records the crop under; ``face_crop`` is the line a person reads.
TAGS = ("face_crop", "face_detector", "face_boxes")


@dataclass(frozen=True)
class FaceCrop:
    """``enabled``: frames were cropped at all. ``detector``: "mtcnn" or "haar", the detector
    that found faces in the clips without database boxes (None when no clip needed it).
    ``database_boxes``: clips cropped with their database's own boxes, of ``clips``."""

    enabled: bool
    detector: str | None = None
    database_boxes: int = 0
    clips: int = 0

    @property
    def used_database_boxes(self) -> bool:
        return self.enabled and self.database_boxes > 0

    @property
    def method(self) -> str:
        """For people: ``none``, ``mtcnn``, ``haar``, ``database boxes`` or
        ``database boxes + mtcnn`` (some clips with their database's boxes)."""
        if not self.enabled:
            return NONE
        if self.detector is None:
            return "database boxes"
        return f"database boxes + {self.detector}" if self.database_boxes else self.detector

    @classmethod
    def pooled(cls, crops: list[FaceCrop]) -> FaceCrop:
        """The crop of several databases' clips pooled (a cross-domain study's sources): their
        clips and database boxes summed, the detector of those that needed one."""
        if not any(c.enabled for c in crops):
            return cls(False)
        detectors = {c.detector for c in crops if c.enabled and c.detector}
        return cls(
            True,
            " + ".join(sorted(detectors)) or None,
            sum(c.database_boxes for c in crops),
            sum(c.clips for c in crops),
        )

    def tags(self) -> dict[str, str]:
        """The run tags that record it (:data:`TAGS`)."""
        boxes = "none" if not self.database_boxes else f"{self.database_boxes} of {self.clips}"
        return {
            "face_crop": self.method,
            "face_detector": self.detector or NONE,
            "face_boxes": boxes if self.enabled else NONE,
        }

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> FaceCrop:
        """The crop a run's tags record. Runs logged before these tags existed recorded only the
        ``face_crop`` line, which is read the way it was written."""
        method = tags.get("face_crop", NONE)
        if "face_detector" in tags:
            detector = None if tags["face_detector"] == NONE else tags["face_detector"]
            boxes, _, clips = tags.get("face_boxes", NONE).partition(" of ")
            counted = boxes.isdigit() and clips.isdigit()
            return cls(
                method != NONE, detector, int(boxes) if counted else 0, int(clips) if counted else 0
            )
        if method == NONE:
            return cls(False)
        if method == "database boxes":
            return cls(True, None, 1, 1)
        detector = method.removeprefix("database boxes + ")
        return cls(True, detector, int(detector != method), 1)
