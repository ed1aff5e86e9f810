"""The VGG-Face backbone: its facts (:mod:`.spec`, no Keras), its layers (:mod:`.network`), the
MatConvNet reader (:mod:`.matconvnet`, no Keras) and the builder with weights (:mod:`.vggface`)."""
