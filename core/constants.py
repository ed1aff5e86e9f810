"""Facts that several parts of the project rely on, each stated once. Imports nothing heavy.

Class convention, everywhere: 1 = bona fide, 0 = attack; a score is the probability of bona fide.
"""

from __future__ import annotations

import numpy as np

INPUT_SIZE = 224  # VGG-Face input side
INPUT_SHAPE = (INPUT_SIZE, INPUT_SIZE, 3)
FEATURE_SIZE = 4096  # fc7 width
FEATURE_SHAPE = (1, 1, FEATURE_SIZE)  # the fc7 map that every head consumes
FEATURE_LAYER = "fc7"
# averageImage of the released vgg_face.mat, RGB order (SPEC §2). Caffe ports use BGR: not these.
AVERAGE_RGB = np.array([129.1863, 104.7624, 93.5940], dtype=np.float32)
# Initialiser of a backbone built without weights: He keeps the image's signal through 15 ReLU
# layers (Glorot's default shrinks it ~2x per layer, leaving fc7 near 0.02, which no head learns
# from in a demonstration run). Part of a random backbone's identity in the feature cache.
RANDOM_INIT = "he_normal"
RANDOM_SEED = 0  # seed of the random backbone used when there are no weights

# float32, or Keras' mixed policies (float32 weights, outputs and loss; bfloat16/float16 compute)
PRECISIONS = ("float32", "bfloat16", "float16")
AUTO_PRECISION = "auto"  # the machine's choice (core.features.request.resolve_precision)

FRAMES_PER_CLIP = 7  # write-up §3: InputLayer(input_shape=(7, 224, 224, 3))

BONAFIDE = 1  # class index / sigmoid target / label of a bona fide presentation
ATTACK = 0
BONAFIDE_LABEL = "bonafide"  # Clip.label and attack_type of bona fide clips
ATTACK_LABEL = "attack"
LABELS = (BONAFIDE_LABEL, ATTACK_LABEL)
SPLITS = ("train", "dev", "test")
