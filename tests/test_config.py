import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgdlab.config import TrainConfig
from sgdlab.errors import ConfigError


def test_defaults_are_the_main_job():
    c = TrainConfig()
    assert (c.dataset, c.layers, c.activation, c.batch_size) == ("mnist", (100,), "relu", 100)


@pytest.mark.parametrize("changes,match", [
    ({"lr": -0.1}, "lr=-0.1 is not allowed"),
    ({"lr": 0}, "lr=0 is not allowed"),
    ({"lr": float("nan")}, "lr=nan"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"epochs": 1.5}, "epochs=1.5"),
    ({"optimizer": "lbfgs"}, "optimizer='lbfgs' is unknown: choose one of sgd, momentum"),
    ({"activation": "gelu"}, "activation='gelu'"),
    ({"layers": "100,abc"}, "layers='100,abc'"),
    ({"layers": [100, 0]}, "every hidden size"),
    ({"momentum": 1.0}, "momentum=1.0"),
    ({"val_fraction": 1.0}, "val_fraction=1.0"),
    ({"dtype": "float16"}, "dtype='float16'"),
    ({"gradient": "symbolic"}, "gradient='symbolic'"),
    ({"restore_best": "yes"}, "restore_best='yes'"),
    ({"patience": 0}, "patience=0"),
])
def test_bad_values_are_named_with_what_is_allowed(changes, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig().replace(**changes)


def test_layers_parse_from_text():
    assert TrainConfig(layers="256, 128").layers == (256, 128)
    assert TrainConfig(layers=50).layers == (50,)
    assert TrainConfig(layers="").layers == ()


def test_unknown_setting_is_refused_by_name():
    with pytest.raises(ConfigError, match="unknown setting 'lrate'"):
        TrainConfig.from_dict({"lrate": 0.1})


def test_toml_round_trip(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[train]\nlr = 0.3\nlayers = [64, 32]\noptimizer = "sgd"\n')
    c = TrainConfig.from_toml(path)
    assert (c.lr, c.layers, c.optimizer) == (0.3, (64, 32), "sgd")
    assert TrainConfig.from_dict(c.to_dict()) == c
    (tmp_path / "bad.toml").write_text("lr = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        TrainConfig.from_toml(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_toml(tmp_path / "missing.toml")


values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=8),
                   st.lists(st.integers(-2, 300), max_size=3))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(list(TrainConfig.__dataclass_fields__) + ["bogus"]), values, max_size=4))
def test_any_mapping_builds_a_config_or_raises_config_error(d):
    """A mapping is refused with a ConfigError naming one of its keys, or built keeping every value it gave."""
    try:
        config = TrainConfig.from_dict(d)
    except ConfigError as exc:
        assert any(repr(k) in str(exc) or f"{k}=" in str(exc) for k in d), (d, str(exc))
        return
    built = config.to_dict()
    for key, value in d.items():
        if key not in ("layers", "features", "drop"):  # lists given as text ("a,b") are stored parsed
            assert built[key] == value and type(built[key]) is type(value), (key, value, built[key])
    assert TrainConfig.from_dict(built) == config


@pytest.mark.parametrize("name", ["features", "drop"])
@pytest.mark.parametrize("value", ["", " , ", []])
def test_a_column_list_that_names_no_column_is_refused(name, value):
    """An empty --features/--drop is a mistake to say, not a silent 'not given' (as --out '' was)."""
    with pytest.raises(ConfigError, match=f"{name}=.* names no column"):
        TrainConfig.from_dict({name: value})
