"""The fc7 cache: how it is filled (:mod:`.pipeline`, with the face crop's boxes from
:mod:`.faces`), stored (:mod:`.store`) and keyed (:mod:`.extract`), what it returns
(:mod:`.featureset`), how an interrupted extraction is resumed (:mod:`.resume`), and the one
entry point from options to features (:mod:`.request`). Reusing a cache entry imports neither
Keras, TensorFlow nor JAX, ``--precision auto`` included."""

from core.features.extract import (
    ExtractionInterrupted,
    FeatureSet,
    NoFace,
    cache_key,
    default_cache_dir,
    default_weights_path,
    extract_features,
    no_face_by_species,
    random_backend,
    weights_fingerprint,
)
from core.features.request import FeatureOptions, cached_features, load_data

__all__ = [
    "ExtractionInterrupted",
    "FeatureOptions",
    "FeatureSet",
    "NoFace",
    "cache_key",
    "cached_features",
    "default_cache_dir",
    "default_weights_path",
    "extract_features",
    "load_data",
    "no_face_by_species",
    "random_backend",
    "weights_fingerprint",
]
