"""Preset resolution: params.yaml presets plus overrides, and errors before any training."""

import pytest

from mura_core.errors import ConfigError
from pipelines.training.presets import resolve_config


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("MURA_HOME", str(tmp_path / "home"))


def test_cpu_smoke_and_mura_paper_presets():
    smoke = resolve_config("cpu_smoke")
    assert smoke.arch == "baseline_cnn" and smoke.weights is None
    paper = resolve_config("mura_paper")
    assert paper.arch == "densenet169"
    assert paper.image_size == (320, 320) and paper.batch_size == 8
    assert paper.weights == "imagenet" and paper.class_weighting
    assert set(paper.augment_ops) == {"flip", "rotate"}
    assert paper.learning_rate == pytest.approx(1e-4)
    # End to end from the first step, BatchNorm statistics adapting, LR / 10 on a plateau, 5 members.
    assert not paper.head_warmup and paper.train_batch_norm and paper.reduce_lr_factor == 0.1
    assert paper.ensemble == 5
    # The paper picks its epoch by holdout loss; the smoke preset by holdout AUC (README says why).
    assert (paper.select_by, smoke.select_by) == ("loss", "score")
    with pytest.raises(ConfigError, match="ensemble must be between 1 and 20"):
        resolve_config("cpu_smoke", {"ensemble": 0})


def test_overrides_are_coerced():
    config = resolve_config(
        "cpu_smoke",
        {
            "arch": "resnet50",
            "epochs": "3",
            "image_size": "80x96",
            "augment": "false",
            "task": "binary:elbow",
        },
    )
    assert config.architectures == ("resnet50",)
    assert config.epochs == 3 and config.image_size == (80, 96) and config.augment is False
    assert config.task == "binary:elbow"
    several = resolve_config("cpu_smoke", {"architectures": ["baseline_cnn", "xception"], "image_size": 96})
    assert several.architectures == ("baseline_cnn", "xception") and several.image_size == (96, 96)
    assert several.for_arch("xception").arch == "xception"
    assert resolve_config("cpu_smoke", {"augment": 0.5}).augment_strength == 0.5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"arch": "vgg16"}, "unknown architecture 'vgg16'"),
        ({"task": "triage"}, "unknown task 'triage'"),
        ({"task": "binary:XR_KNEE"}, "unknown body part"),
        ({"arch": "inception_v3", "image_size": 64}, "too small for inception_v3"),
        ({"epochs": "many"}, "epochs='many'"),
        ({"colour": "blue"}, "unknown training setting(s) colour"),
        ({"image_size": "big"}, "image_size"),
        ({"dropout": 1.5}, "dropout"),
        ({"augment_ops": ["flip", "shear"]}, "shear"),
        ({"select_by": "kappa"}, "select_by must be one of ('loss', 'score'), got 'kappa'"),
    ],
)
def test_bad_settings_raise_config_error(overrides, message):
    with pytest.raises(ConfigError, match=None) as caught:
        resolve_config("cpu_smoke", overrides)
    assert message in str(caught.value)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'fastest'"):
        resolve_config("fastest")


def test_tuned_presets_are_read_from_mura_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    import yaml

    tuned = {
        key: value
        for key, value in resolve_config("cpu_smoke").to_dict().items()
        if key not in ("arch", "preset")
    }
    (home / "presets.yaml").write_text(yaml.safe_dump({"tuned_x": {**tuned, "learning_rate": 0.0042}}))
    assert resolve_config("tuned_x").learning_rate == pytest.approx(0.0042)


def test_a_preset_that_leaves_a_field_unset_is_refused_naming_it(tmp_path, monkeypatch):
    """A preset without `epochs` trained 4 epochs, a default spelled in Python: params.yaml is the one
    home of every training field, and a preset missing one is refused with its name."""
    import dataclasses

    import yaml

    from mura_core.config import load_config

    params = yaml.safe_load(open(load_config().source, encoding="utf-8"))
    del params["presets"]["cpu_smoke"]["epochs"]
    changed = tmp_path / "params.yaml"
    changed.write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.setenv("MURA_PARAMS_FILE", str(changed))
    with pytest.raises(ConfigError, match="preset 'cpu_smoke' does not set epochs"):
        resolve_config("cpu_smoke")
    from pipelines.training.presets import TrainConfig

    assert all(
        field.default is dataclasses.MISSING
        for field in dataclasses.fields(TrainConfig)
        if field.name != "extra"
    )


@pytest.mark.parametrize(
    ("models", "message"),
    [("mura_binary", "deploy.models: expected a list"), (["mura_binary", "../x"], "'../x' is not allowed")],
)
def test_the_served_models_are_a_list_of_contract_names(tmp_path, models, message):
    import yaml

    from mura_core.config import load_config
    from mura_core.settings import REPO_ROOT

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    assert "mura_14cls" in load_config(REPO_ROOT / "params.yaml").deploy.models
    params["deploy"]["models"] = models
    changed = tmp_path / "params.yaml"
    changed.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=message):
        load_config(changed)
