"""toyticket.widgets: precomputed views linked to a control in the browser (no kernel)."""

import ipywidgets as widgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from toyticket.widgets import figure_view, view_selector, views_widget  # noqa: E402


def _figure(value):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_title(f"view {value}")
    ax.plot([0, 1], [0, value])
    return fig


def test_view_selector_links_a_slider_to_a_stack_in_the_browser():
    before = set(plt.get_fignums())
    box = view_selector(_figure, [3, 5, 7], description="seed", value=5)
    selector, stack = box.children
    assert isinstance(selector, widgets.SelectionSlider) and isinstance(stack, widgets.Stack)
    assert [label for label, _ in selector.options] == ["3", "5", "7"]
    assert selector.index == 1 and stack.selected_index == 1
    assert len(stack.children) == 3
    for child, value in zip(stack.children, [3, 5, 7], strict=True):
        assert isinstance(child, widgets.HTML)
        assert child.value.startswith('<img src="data:image/png;base64,')
        assert f'alt="view {value}"' in child.value
    assert set(plt.get_fignums()) == before, "rendered figures must be closed"
    # the link is a browser-side jslink between the control's index and the stack
    link = box._toyticket_link
    assert type(link).__name__ == "Link"  # jslink: runs in the browser, not in Python
    assert link.source == (selector, "index") and link.target == (stack, "selected_index")


@pytest.mark.parametrize(
    ("control", "kind"), [("dropdown", widgets.Dropdown), ("toggle", widgets.ToggleButtons)]
)
def test_other_controls(control, kind):
    box = views_widget(["<b>a</b>", widgets.Label("b")], ["a", "b"], control=control)
    assert isinstance(box.children[0], kind)
    assert box.children[1].children[0].value == "<b>a</b>"


def test_figure_view_keeps_figure_when_asked():
    fig = _figure(1)
    view = figure_view(fig, close=False)
    assert fig.number in plt.get_fignums() and "data:image/png" in view.value
    plt.close(fig)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="labels"):
        views_widget(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="distinct"):
        views_widget(["a", "b"], ["x", "x"])
    with pytest.raises(ValueError, match="control"):
        views_widget(["a"], ["x"], control="knob")
    with pytest.raises(TypeError, match="view"):
        views_widget([42], ["x"])
    with pytest.raises(ValueError, match="at least one"):
        view_selector(_figure, [])
