"""Train a head on cached features one compiled call per epoch: what ``model.fit`` computes,
without its per-step Python.

:class:`Engine` trains a Keras model in place (its own variables are the state, so
``get_weights``/``set_weights`` work between epochs) with a Keras optimizer and loss, as
``model.fit(x, y, batch_size, class_weight=..., shuffle=True)`` does an epoch: the same batches
(the last, partial one included), class weights turned into sample weights as Keras does and
applied by the loss, the loss's own reduction, dropout drawn from the layers' own seed generators
(the same masks as ``fit`` in the same order), a loss scale under ``mixed_float16`` as
``compile`` adds it, and the epoch's loss as ``fit`` reports it (the batch losses' mean weighted
by batch size). Only the shuffled order differs: ``fit`` shuffles with tf.data (TensorFlow) or
NumPy's global generator (JAX), the engine with its own, seeded: the first epoch's order is
``np.random.default_rng(seed).permutation(len(x))``. tests/test_engine.py checks all of it
against ``fit``.

How an epoch runs (what was measured for each choice: bench/RESULTS.md, "Training epochs"):
the inputs are the backend's tensors, made once per :meth:`Engine.fit` and kept in their own
order; an epoch takes its shuffled order as an argument and each step gathers its batch's rows.

- JAX: one ``jax.jit`` call: ``lax.scan`` over the full batches, then the partial batch, each
  step ``model.stateless_call`` under ``jax.grad`` and ``optimizer.stateless_apply``. The state is
  donated, so the epoch's result reuses its buffers instead of holding a second copy.
- TensorFlow: one ``tf.function`` call, a ``tf.while_loop`` over the batches, each step a
  ``GradientTape`` in TensorFlow's graph kernels and ``optimizer.apply`` compiled by XLA
  (``jit_compile``), which makes each variable's update one pass over memory instead of one per
  operation. The forward and backward passes are not given to XLA: on the CPU it draws Keras'
  dropout masks (TensorFlow's auto-selected random algorithm) ~30-50x slower than the graph kernel
  does, which made a whole epoch under XLA several times slower than without it.
- Any other backend: ``model.train_on_batch`` batch by batch (the model compiled with the same
  optimizer and loss): the same result, without the speed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops


class Engine:
    """Trains ``model`` (inputs -> logits) an epoch per call; see the module's docstring.

    ``optimizer`` and ``loss`` are Keras objects (``loss`` called as ``loss(y, logits,
    sample_weight)``); ``class_weight`` maps a label to its inputs' weight (labels not in it weigh
    1, as in Keras); ``seed`` seeds the shuffling (dropout draws from the layers' own seed
    generators, seeded by ``keras.utils.set_random_seed`` before the model was built);
    ``jit_compile`` False runs without XLA (TensorFlow) or without ``jax.jit`` (JAX).
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        loss: keras.losses.Loss,
        batch_size: int,
        class_weight: Mapping[int, float] | None = None,
        seed: int = 0,
        jit_compile: bool | str = "auto",
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if model.dtype_policy.name == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):  # as model.compile does: float16 gradients need a scaled loss
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        self.model, self.optimizer, self.loss = model, optimizer, loss
        self.batch_size = int(batch_size)
        self.class_weight = dict(class_weight or {})
        self.jit_compile = jit_compile is not False
        self._rng = np.random.default_rng(seed)
        self._backend = keras.backend.backend()
        self._epoch: Any = None  # the compiled epoch, made on the first call
        self._forward: Any = None
        if self._backend not in ("tensorflow", "jax"):
            model.compile(optimizer=optimizer, loss=loss, jit_compile=jit_compile)
        if not self.optimizer.built:
            self.optimizer.build(model.trainable_variables)

    def sample_weights(self, y: np.ndarray) -> np.ndarray:
        """Each input's weight: its label's class weight, 1 for a label not in it (float32).

        As Keras reads ``class_weight``: the label is ``y`` rounded, or the argmax of one-hot rows.
        """
        labels = np.asarray(y)
        if labels.ndim > 1:
            labels = labels.argmax(-1) if labels.shape[-1] != 1 else labels[..., 0]
        labels = np.round(labels).astype(np.int64)
        weights = np.ones(len(labels), dtype=np.float32)
        for label, weight in self.class_weight.items():
            weights[labels == label] = weight
        return weights

    def train_epoch(self, x: np.ndarray, y: np.ndarray, shuffle: bool = True) -> float:
        """One epoch over ``x``, ``y`` in batches of ``batch_size`` (in a new random order when
        ``shuffle``); returns the epoch's mean training loss as ``model.fit`` reports it."""
        return self._epoch_on(self._inputs(x, y), shuffle)

    def _inputs(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, Any]:
        """``x``, ``y`` and their sample weights as the backend's tensors, in their own order:
        made once for all of :meth:`fit`'s epochs, each epoch gathering its batches from them
        (a shuffled copy of the inputs every epoch was fresh memory to fault in, ~5-10% of a
        small head's epoch in a sweep, where blocks of 1 MiB and more are mapped anew)."""
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"x and y must hold the same number of inputs (> 0): {len(x)}, {len(y)}"
            )
        x, y = np.asarray(x), np.asarray(y)
        arrays = (x, y, self.sample_weights(y))
        if self._backend in ("tensorflow", "jax"):
            return tuple(ops.convert_to_tensor(a) for a in arrays)
        return arrays

    def _epoch_on(self, inputs: tuple[Any, Any, Any], shuffle: bool) -> float:
        n = len(inputs[0])
        order = (self._rng.permutation(n) if shuffle else np.arange(n)).astype(np.int32)
        if self._backend == "jax":
            return self._jax_epoch(*inputs, order)
        if self._backend == "tensorflow":
            return self._tf_epoch(*inputs, order)
        return self._plain_epoch(*(a[order] for a in inputs))

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        epochs: int,
        callbacks: Sequence[keras.callbacks.Callback] = (),
    ) -> list[float]:
        """Up to ``epochs`` shuffled epochs with Keras ``callbacks`` at epoch level, as ``fit``
        calls them (``on_train_begin``, ``on_epoch_begin``, ``on_epoch_end`` with ``{"loss":
        ...}``, ``on_train_end``; no batch hooks: the batches run inside one call); stops after
        the epoch in which a callback set ``model.stop_training``. Returns each epoch's loss."""
        hooks = keras.callbacks.CallbackList(list(callbacks), model=self.model)
        self.model.stop_training = False
        hooks.on_train_begin()
        losses: list[float] = []
        inputs = self._inputs(x, y)
        for epoch in range(epochs):
            hooks.on_epoch_begin(epoch)
            losses.append(self._epoch_on(inputs, shuffle=True))
            hooks.on_epoch_end(epoch, {"loss": losses[-1]})
            if self.model.stop_training:
                break
        hooks.on_train_end()
        return losses

    def predict_logits(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The model's outputs (logits) for ``x``, ``batch_size`` inputs at a time, dropout off.

        The last batch is padded to ``batch_size``, so one compiled shape serves every batch.
        """
        if self._forward is None:
            self._forward = self._make_forward()
        outputs = []
        for start in range(0, len(x), batch_size):
            batch = np.asarray(x[start : start + batch_size])
            rows = len(batch)
            if rows < batch_size:
                padding = np.zeros((batch_size - rows, *batch.shape[1:]), batch.dtype)
                batch = np.concatenate([batch, padding])
            outputs.append(ops.convert_to_numpy(self._forward(batch))[:rows])
        return np.concatenate(outputs)

    # --- TensorFlow -------------------------------------------------------------------------

    def _tf_epoch(self, x: Any, y: Any, w: Any, order: np.ndarray) -> float:
        if self._epoch is None:
            self._epoch = self._tf_compile()
        return float(self._epoch(x, y, w, order))

    def _tf_compile(self):
        import tensorflow as tf

        model, optimizer, loss_fn, size = self.model, self.optimizer, self.loss, self.batch_size
        variables = model.trainable_variables
        apply = tf.function(
            lambda grads: optimizer.apply(grads, variables), jit_compile=self.jit_compile
        )

        def step(x, y, w):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True), w)
                scaled = optimizer.scale_loss(loss)
            apply(tape.gradient(scaled, variables))
            return tf.cast(loss, tf.float32)

        def epoch(x, y, w, order):
            # One trace of the step serves the full batches and the partial one.
            specs = [tf.TensorSpec((None, *a.shape[1:]), a.dtype) for a in (x, y, w)]
            batch_step = tf.function(step, input_signature=specs)
            n = order.shape[0]
            steps, tail = divmod(n, size)
            total = tf.zeros((), tf.float32)
            for i in tf.range(steps):
                rows = order[i * size : (i + 1) * size]
                total += batch_step(*[tf.gather(a, rows) for a in (x, y, w)]) * size
            if tail:
                rows = order[steps * size :]
                total += batch_step(*[tf.gather(a, rows) for a in (x, y, w)]) * tail
            return total / n

        return tf.function(epoch)

    # --- JAX --------------------------------------------------------------------------------

    def _jax_epoch(self, x: Any, y: Any, w: Any, order: np.ndarray) -> float:
        if self._epoch is None:
            self._epoch = self._jax_compile()
        groups = (
            self.model.trainable_variables,
            self.model.non_trainable_variables,
            self.optimizer.variables,
        )
        state = tuple([v.value for v in group] for group in groups)
        state, loss = self._epoch(state, x, y, w, order)
        for group, values in zip(groups, state, strict=True):
            for variable, value in zip(group, values, strict=True):
                variable.assign(value)
        return float(loss)

    def _jax_compile(self):
        import jax

        model, optimizer, loss_fn, size = self.model, self.optimizer, self.loss, self.batch_size

        def step(state, batch):
            trainable, non_trainable, slots = state
            x, y, w = batch

            def scaled_loss(trainable, non_trainable):
                logits, non_trainable = model.stateless_call(
                    trainable, non_trainable, x, training=True
                )
                loss = loss_fn(y, logits, w)
                with keras.StatelessScope(
                    state_mapping=list(zip(optimizer.variables, slots, strict=True))
                ):
                    scaled = optimizer.scale_loss(loss)  # a loss scale is the optimizer's state
                return scaled, (loss, non_trainable)

            grad = jax.grad(scaled_loss, has_aux=True)
            grads, (loss, non_trainable) = grad(trainable, non_trainable)
            trainable, slots = optimizer.stateless_apply(slots, grads, trainable)
            return (trainable, non_trainable, slots), loss.astype("float32")

        def epoch(state, x, y, w, order):
            def gathered(state, rows):  # a batch's rows, gathered in the step
                return step(state, (x[rows], y[rows], w[rows]))

            n = order.shape[0]
            steps, tail = divmod(n, size)
            full = steps * size
            state, losses = jax.lax.scan(gathered, state, order[:full].reshape(steps, size))
            total = losses.sum() * size
            if tail:
                state, loss = gathered(state, order[full:])
                total += loss * tail
            return state, total / n

        return jax.jit(epoch, donate_argnums=0) if self.jit_compile else epoch

    # --- any other backend ------------------------------------------------------------------

    def _plain_epoch(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:  # in order
        total = 0.0
        for start in range(0, len(x), self.batch_size):
            end = start + self.batch_size
            loss = self.model.train_on_batch(x[start:end], y[start:end], w[start:end])
            total += float(loss) * len(x[start:end])
        return total / len(x)

    def _make_forward(self):
        model = self.model
        if self._backend == "tensorflow":
            import tensorflow as tf

            return tf.function(lambda x: model(x, training=False), jit_compile=self.jit_compile)
        if self._backend == "jax":
            import jax

            def forward(trainable, non_trainable, x):
                return model.stateless_call(trainable, non_trainable, x, training=False)[0]

            compiled = jax.jit(forward) if self.jit_compile else forward
            return lambda x: compiled(
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                x,
            )
        return lambda x: model(x, training=False)
