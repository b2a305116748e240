"""Minimal tests of the chapters' plotting helpers (toyticket.plots): each draws what it is
given on an Agg canvas and refuses inputs that do not fit."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from toyticket import plots  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_distance_map_draws_one_colour_per_distance(ax):
    distance = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])
    image = plots.distance_map(ax, distance, 3, "title")
    assert image.get_array().shape == (2, 4) and image.cmap.N == 4
    assert image.get_clim() == (-0.5, 3.5) and ax.get_title() == "title"
    with pytest.raises(ValueError, match="2 axes"):
        plots.distance_map(ax, torch.zeros(3), 3)


def test_law_bars_draws_bars_intervals_and_law_markers(ax):
    mean = torch.tensor([0.2, 0.5, 0.3])
    plots.law_bars(ax, [0, 1, 2], mean, mean - 0.05, mean + 0.05, {"exact": [0.25, 0.5, 0.25]})
    assert [round(p.get_height(), 6) for p in ax.patches] == [0.2, 0.5, 0.3]
    (markers,) = ax.collections[-1:]
    assert np.allclose(markers.get_offsets()[:, 1], [0.25, 0.5, 0.25])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="low has 2 values for 3 categories"):
        plots.law_bars(ax, [0, 1, 2], mean, mean[:2], mean)
    with pytest.raises(ValueError, match="laws\\['x'\\] has 2 values"):
        plots.law_bars(ax, [0, 1, 2], mean, mean, mean, {"x": [0.5, 0.5]})


def test_weight_map_greys_pruned_weights_and_writes_the_rest(ax):
    weights = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    image = plots.weight_map(ax, weights, mask, xlabels=["a", "b"], ylabels=["r0", "r1"])
    shown = np.asarray(image.get_array().filled(np.nan))
    assert np.isnan(shown[0, 1]) and shown[1, 1] == 3.0
    assert sorted(t.get_text() for t in ax.texts) == ["+0", "+1", "+3"]
    with pytest.raises(ValueError, match="mask has shape"):
        plots.weight_map(ax, weights, torch.ones(3, 2))
    with pytest.raises(ValueError, match="xlabels has 1 labels"):
        plots.weight_map(ax, weights, xlabels=["a"])
