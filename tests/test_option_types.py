"""Option values are checked against their keyword's type when a Session is made: a word for an
on/off option, a number for a list, a string for a count or a negative count is a ValueError
naming the option, not a feature turned on or a TypeError at the first frame."""
import numpy as np
import pytest

from napari_vos import Session
from napari_vos.methods.registry import check_options


@pytest.mark.parametrize("method, options, says", [
    ("rgmp", {"online_finetune": "no"}, "online_finetune is on or off: it takes True or False"),
    ("osvos_at", {"crf": "off"}, "crf takes True, False or 'auto'"),
    ("rgmp", {"scales": 1.0}, "scales takes a list such as [1.0] or None"),
    ("rgmp", {"online_size": 128}, "online_size takes a list, such as [256, 256]"),
    ("rgmp", {"online_size": [64]}, "online_size takes 2 values"),
    ("rgmp", {"scales": [0.0, 1.0]}, "scales are fractions of the working size in (0, 1]"),
    ("rgmp", {"scales": [100.0]}, "scales are fractions of the working size in (0, 1]"),
    ("cosnet", {"n_references": "3"}, "n_references takes a whole number"),
    ("agame", {"update_rate": "0.1"}, "update_rate takes a number or None"),
    ("flow", {"num_warp": -1}, "num_warp takes a whole number of at least 0"),
    ("rgmp", {"online_steps": -1}, "online_steps takes a whole number of at least 0"),
    ("osvos_at", {"crf_iterations": "a"}, "crf_iterations takes a whole number"),
    ("osvos_at", {"finetune_crop": "big"}, "finetune_crop takes a side in pixels"),
    ("osvos_at", {"finetune_crop": 2.5}, "finetune_crop takes a whole number or None"),
    ("osvos_at", {"finetune_optimizer": "lbfgs"}, "finetune_optimizer must be 'adam' or 'sgd'"),
    ("frtm", {"eta": 0.0}, "in (0, 1)"),  # gamma_0 = eta = 0 leaves every sample weight 0
    ("agame", {"recurrence": False}, 'recurrence takes a word in quotes, such as "aggregated"'),  # its own word
])
def test_a_value_of_the_wrong_kind_is_named_when_the_session_is_made(method, options, says):
    video = np.zeros((3, 16, 16), np.uint8)
    with pytest.raises(ValueError) as err:
        Session(video, method=method, device="cpu", **options)
    assert says in str(err.value)


@pytest.mark.parametrize("method, options", [
    ("rgmp", {"online_finetune": np.bool_(True), "scales": (1.0,), "online_size": [64, 96], "window": "objects"}),
    ("rgmp", {"scales": np.array([0.5, 1.0]), "online_lr": 1, "online_steps": np.int64(5)}),
    ("osvos_at", {"finetune_crop": None, "finetune_iterations": 3, "crf": False}),
    ("osvos_at", {"finetune_crop": "default"}),
    ("frtm", {"seed": -1}),
    ("rvos", {"zero_shot": None}),
    ("agame", {"update_rate": 0, "n_components": None}),
])
def test_values_of_the_right_kind_pass(method, options):
    check_options(method, options)
