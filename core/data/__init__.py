"""Clip data: what a clip is (:mod:`.clips`), reading its frames (:mod:`.frames`), dataset layouts
(:mod:`.layouts`, one file each), subjects and splits, the loader (:mod:`.dataset`) and the
embedded synthetic demonstration set (:mod:`.synthetic`). No Keras."""
