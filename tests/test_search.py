"""The sweep's search space comes from the head registry: a new family is searched with no edit.

Real Optuna studies in memory; throwaway families are registered in a copy of the registry.
"""

from __future__ import annotations

import keras
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution

import heads
from experiments.config import TrialConfig
from experiments.trial import search
from heads import registry
from heads.registry import Preset, SearchSpace, register_family

# Today's ranges, which studies already in a database were started with: (size, low, high).
BUILT_IN = {
    "conv": ("width", 64, 4096),
    "dense": ("width", 64, 4096),
    "convlstm": ("filters", 16, 2049),
    "lstm": ("units", 8, 512),
}
TOY_HEAD_PARAMS = 4096 * 16 + (16 + 1) * 2  # toy16: Dense(16) on fc7 without bias, then Dense(2)


@pytest.fixture
def isolated_registry(monkeypatch):
    """Families registered in a test vanish with it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@pytest.fixture(autouse=True)
def quiet_optuna():
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(verbosity)


def register_toy() -> None:
    """A family with its own size name, two extra choices and no dropout, plus a write-up preset."""

    @register_family(
        "toy",
        kind="frame",
        search=SearchSpace(
            "units", 2, 32, choices={"activation": ("relu", "tanh"), "bias": (True, False)}
        ),
        presets={
            "toy16": Preset(
                {"units": 16, "activation": "tanh", "bias": False},
                head_params=TOY_HEAD_PARAMS,
                total_params=1 + TOY_HEAD_PARAMS,
            )
        },
    )
    def toy_head(
        features: keras.KerasTensor, *, units: int = 8, activation: str = "relu", bias: bool = True
    ) -> keras.KerasTensor:
        """Flatten -> Dense(units)."""
        x = keras.layers.Flatten(name="flatten")(features)
        return keras.layers.Dense(units, activation=activation, use_bias=bias, name="fc8")(x)


def ask(study: optuna.Study, allowed: list[str]) -> tuple[optuna.Trial, TrialConfig]:
    trial = study.ask()
    return trial, search.suggest(trial, allowed)


# --- (a) a new family is searched with no edit in experiments/search.py ------------------------


def test_registered_family_is_searched_suggested_and_its_preset_is_a_baseline(isolated_registry):
    register_toy()
    assert search.families() == ["conv", "dense", "convlstm", "lstm", "toy"]  # registration order
    assert search.families("toy*") == ["toy"]

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial, config = ask(study, ["toy"])
        assert (config.family, config.kind) == ("toy", "frame")
        assert set(trial.params) >= {"head", "toy_units", "toy_activation", "toy_bias"}
        assert "dropout" not in trial.params  # toy takes no dropout: the shared choice is not asked
        assert trial.distributions["toy_units"] == IntDistribution(2, 32, log=True)
        assert trial.distributions["toy_bias"] == CategoricalDistribution((True, False))
        assert config.hparams == {
            "units": trial.params["toy_units"],
            "activation": trial.params["toy_activation"],
            "bias": trial.params["toy_bias"],
        }
        assert 2 <= config.hparams["units"] <= 32 and config.head == f"toy{config.hparams['units']}"
        study.tell(trial, 0.0)
    model = heads.build_head_model(config.family, config.output, **config.hparams)
    assert model.get_layer("fc8").units == config.hparams["units"]

    expected = {
        "head": "toy",
        "toy_units": 16,
        "toy_activation": "tanh",
        "toy_bias": False,
        **{k: v for k, v in search.BASELINE.items() if k != "dropout"},
    }
    assert search.baselines("toy*") == [expected]
    assert search.baselines()[-1] == expected  # natural order: after the built-in write-up heads

    study = optuna.create_study()  # a study's "head" choices are fixed once it has asked them
    study.enqueue_trial(expected)
    trial, config = ask(study, search.families())
    assert trial.params == expected
    assert search.baseline_name(trial.params) == "toy16" and config.head == "toy16"
    assert search.baseline_name({**trial.params, "toy_bias": True}) is None
    baseline = heads.build_head_model(config.family, config.output, **config.hparams)
    assert baseline.count_params() == heads.get_spec("toy16").paper_head_params


def test_throwaway_families_stay_in_their_test():
    assert "toy" not in heads.list_heads() and "toy" not in search.families()


# --- (b), (c) a family the sweep could not search fails at registration -------------------------


def test_family_without_a_search_space_raises_at_registration(isolated_registry):
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'search'"):
        register_family("nosearch", kind="frame")
    with pytest.raises(TypeError, match=r"head family 'nosearch' needs search=SearchSpace\(...\)"):
        register_family("nosearch", kind="frame", search=None)
    assert "nosearch" not in heads.list_heads()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            SearchSpace("width", 8, 64),
            r"search space of head family 'bad' names width, not keyword parameters of "
            r"bad_head\(\); it has: units, dropout",
        ),
        (
            SearchSpace("units", 8, 64, choices={"activation": ("relu", "tanh")}),
            r"names activation, not keyword parameters of bad_head\(\)",
        ),
        (SearchSpace("features", 8, 64), "names features, not keyword parameters"),  # positional
    ],
)
def test_search_space_naming_what_the_builder_lacks_raises(isolated_registry, space, message):
    decorate = register_family("bad", kind="frame", search=space)

    def bad_head(features, *, units: int = 8, dropout: float = 0.0):
        return features

    with pytest.raises(TypeError, match=message) as caught:
        decorate(bad_head)
    assert "\n" not in str(caught.value)
    assert "bad" not in heads.list_heads()


def test_presets_must_lie_in_their_family_search_space(isolated_registry):
    def head(features, *, units: int = 8, activation: str = "relu"):
        return features

    space = SearchSpace("units", 8, 64, choices={"activation": ("relu", "tanh")})
    with pytest.raises(ValueError, match=r"preset 'far128' has units=128, outside .* \[8, 64\]"):
        register_family(
            "far", kind="frame", search=space, presets={"far128": Preset({"units": 128})}
        )(head)
    with pytest.raises(ValueError, match="preset 'odd8' has activation='gelu', not one of"):
        register_family(
            "odd", kind="frame", search=space, presets={"odd8": Preset({"activation": "gelu"})}
        )(head)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": "", "low": 1, "high": 2}, "size must name a builder keyword"),
        ({"size": "units", "low": 0, "high": 2}, "bounds must be positive integers, got 0"),
        ({"size": "units", "low": 1, "high": 2.5}, "bounds must be positive integers, got 2.5"),
        ({"size": "units", "low": 9, "high": 8}, "low must not exceed high, got 9 > 8"),
        (
            {"size": "units", "low": 1, "high": 2, "choices": {"act": "relu"}},
            r"choices\['act'\] must be a non-empty tuple of values, got 'relu'",
        ),
        ({"size": "units", "low": 1, "high": 2, "choices": {"act": ()}}, "non-empty tuple"),
        (
            {"size": "units", "low": 1, "high": 2, "choices": {"units": (1, 2)}},
            "'units' is both the size and a choice",
        ),
    ],
)
def test_search_space_rejects_bad_declarations(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace(**kwargs)


def test_search_space_is_read_only_and_lists_its_parameters():
    space = SearchSpace("width", 64, 4096, choices={"activation": ["relu", "softmax"]})
    assert space.params == ("width", "activation")
    assert space.choices["activation"] == ("relu", "softmax") and space.log
    with pytest.raises(TypeError):
        space.choices["activation"] = ("tanh",)
    assert hash(space) == hash(SearchSpace("width", 64, 4096))


# --- (d) the built-in families: today's ranges, names and baselines -----------------------------


def test_built_in_families_declare_todays_ranges():
    assert search.families() == list(BUILT_IN)
    assert heads.list_families() == list(BUILT_IN)
    for family, (size, low, high) in BUILT_IN.items():
        space = heads.get_spec(family).search
        assert (space.size, space.low, space.high, space.log) == (size, low, high, True)
        expected = {"activation": ("relu", "softmax")} if family == "dense" else {}
        assert dict(space.choices) == expected
    for name in heads.list_heads():  # presets share their family's space
        assert heads.get_spec(name).search == heads.get_spec(heads.get_spec(name).family).search


def test_suggest_draws_built_in_families_within_their_declared_ranges():
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=10))
    seen = set()
    for _ in range(60):
        trial, config = ask(study, search.families())
        size, low, high = BUILT_IN[config.family]
        name = f"{config.family}_{size}"  # today's Optuna names, so existing studies resume
        assert trial.distributions[name] == IntDistribution(low, high, log=True)
        assert low <= config.hparams[size] <= high
        assert config.head == f"{config.family}{config.hparams[size]}"
        assert 0.0 <= config.hparams["dropout"] <= 0.5
        assert config.output in heads.OUTPUTS and config.optimizer in search.OPTIMIZERS
        if config.family == "dense":
            assert trial.distributions["dense_activation"] == CategoricalDistribution(
                ("relu", "softmax")
            )
            assert config.hparams["activation"] == trial.params["dense_activation"]
            assert set(config.hparams) == {"width", "dropout", "activation"}
        else:
            assert set(config.hparams) == {size, "dropout"}
        seen.add(config.family)
        study.tell(trial, float(config.hparams[size]))
    assert seen == set(BUILT_IN)


def test_built_in_baselines_are_the_write_up_heads_with_the_write_up_settings():
    expected = [
        {"head": "conv", "conv_width": 2048, **search.BASELINE},
        {"head": "conv", "conv_width": 4096, **search.BASELINE},
        {"head": "convlstm", "convlstm_filters": 2049, **search.BASELINE},
        {"head": "dense", "dense_width": 2048, "dense_activation": "relu", **search.BASELINE},
        {"head": "lstm", "lstm_units": 30, **search.BASELINE},
    ]
    assert search.baselines() == expected
    assert search.baselines("*lstm*") == [expected[2], expected[4]]
    names = ["conv2048", "conv4096", "convlstm2049", "dense2048", "lstm30"]
    assert [search.baseline_name(params) for params in expected] == names

    study = optuna.create_study()
    for params in search.baselines():
        study.enqueue_trial(params)
    for name in names:
        trial, config = ask(study, search.families())
        assert search.baseline_name(trial.params) == name == config.head
        assert config.hparams.items() <= heads.get_spec(name).defaults.items()
    assert search.baseline_name({**expected[0], "dropout": 0.3}) is None


# --- (e) standardisation is searched; precision and XLA are the caller's -----------------------


def test_standardisation_is_a_searched_choice_and_baselines_standardise():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(12):
        trial, config = ask(study, search.families())
        assert trial.distributions["standardize"] == CategoricalDistribution((True, False))
        assert config.standardize is trial.params["standardize"]
        assert (config.training_precision, config.jit_compile) == ("float32", "auto")
        seen.add(config.standardize)
        study.tell(trial, 0.0)
    assert seen == {True, False}
    assert all(params["standardize"] is True for params in search.baselines())
    assert TrialConfig("conv8", "conv", "softmax").params()["standardize"] is True


def test_precision_and_jit_compile_pass_through_unsearched():
    trial = optuna.create_study().ask()
    config = search.suggest(trial, ["dense"], training_precision="bfloat16", jit_compile=False)
    assert (config.training_precision, config.jit_compile) == ("bfloat16", False)
    assert "training_precision" not in trial.params and "jit_compile" not in trial.params
    assert config.params()["training_precision"] == "bfloat16"  # logged with the trial's params
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16, float16"):
        search.suggest(optuna.create_study().ask(), ["dense"], training_precision="fp8")


def test_logged_parameters_read_as_a_person_writes_them():
    config = TrialConfig(
        head="conv64",
        family="conv",
        output="softmax",
        hparams={"width": 64, "dropout": 0.1 * 3},  # 0.30000000000000004
        learning_rate=7.924356787008144e-05,
    )
    params = config.params()
    assert str(params["dropout"]) == "0.3" and params["width"] == 64
    # a sampled rate keeps every digit: the rate trained with, not 12 of its digits (probe)
    assert params["learning_rate"] == 7.924356787008144e-05
