"""The fc7 feature cache: how it is filled (:mod:`.pipeline`), stored (:mod:`.store`) and keyed
(:mod:`.extract`), and the one entry point from options to features (:mod:`.request`).
Reusing a cache entry imports neither Keras nor TensorFlow."""

from core.features.extract import (
    FeatureSet,
    cache_key,
    default_cache_dir,
    default_weights_path,
    extract_features,
    weights_fingerprint,
)
from core.features.request import FeatureOptions, cached_features, load_data

__all__ = [
    "FeatureOptions",
    "FeatureSet",
    "cache_key",
    "cached_features",
    "default_cache_dir",
    "default_weights_path",
    "extract_features",
    "load_data",
    "weights_fingerprint",
]
