"""Widgets that keep working on the static website: precomputed views switched in the browser.

A widget whose callback runs Python (``ipywidgets.interact``, ``observe``) needs a live kernel;
on the book's website there is none, so its controls would move and nothing else would. The
widgets of this book therefore compute every view a control can select while the chapter is
executed and let the browser switch between them:

- each view (a matplotlib figure, an HTML string or a widget) becomes a child of an
  ``ipywidgets.Stack``;
- the control (a slider, a dropdown or toggle buttons) is linked to the stack's
  ``selected_index`` with ``ipywidgets.jslink``, a link that lives in the browser.

When papermill (nbclient) executes a chapter it saves the state of every widget in the
notebook's metadata, and the website renders that state with the widget JavaScript it serves
itself; moving the control switches the view without a kernel. In a live notebook the widget
behaves the same.

    >>> from toyticket.widgets import view_selector
    >>> def draw(seed):
    ...     fig, ax = plt.subplots()
    ...     ax.imshow(distance[seed])
    ...     return fig
    >>> view_selector(draw, range(8), description="seed")  # doctest: +SKIP

Chapters tag the cell that displays a widget ``nbval-ignore-output`` (model ids are random).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["CONTROLS", "figure_view", "view_selector", "views_widget"]

CONTROLS = ("slider", "dropdown", "toggle")
"""Kinds of control `view_selector` can link to its views."""


def figure_view(fig, *, dpi: float | None = None, alt: str = "", close: bool = True):
    """A matplotlib figure as a widget that shows it as a PNG image (no kernel needed).

    The image is embedded as a data URI in an ``ipywidgets.HTML`` value, so the saved widget
    state alone carries it. The figure is closed unless ``close=False`` (so it is not also
    shown as a cell output).
    """
    import ipywidgets as widgets

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    alt_text = html.escape(alt or _figure_title(fig), quote=True)
    value = (
        f'<img src="data:image/png;base64,{data}" alt="{alt_text}" '
        'style="max-width: 100%; height: auto;"/>'
    )
    return widgets.HTML(value=value)


def _figure_title(fig) -> str:
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        return suptitle.get_text()
    for ax in fig.get_axes():
        if ax.get_title():
            return ax.get_title()
    return "figure"


def _as_view(view, alt: str):
    import ipywidgets as widgets

    if isinstance(view, widgets.Widget):
        return view
    if isinstance(view, str):
        return widgets.HTML(value=view)
    if hasattr(view, "savefig"):  # a matplotlib Figure: its title, else the control's label
        title = _figure_title(view)
        return figure_view(view, alt=title if title != "figure" else alt)
    raise TypeError(
        f"a view must be a matplotlib Figure, an HTML string or an ipywidgets widget, "
        f"not {type(view).__name__}"
    )


def views_widget(
    views: Sequence[Any],
    labels: Sequence[str],
    *,
    description: str = "",
    control: str = "slider",
    value: int = 0,
):
    """Link precomputed `views` to one control whose options are `labels`.

    Returns an ``ipywidgets.VBox`` of the control and an ``ipywidgets.Stack`` of the views; the
    control's ``index`` drives the stack's ``selected_index`` through ``jslink``, so switching
    happens in the browser. `value` is the index shown first.
    """
    import ipywidgets as widgets

    labels = [str(label) for label in labels]
    if not views:
        raise ValueError("views_widget needs at least one view")
    if len(views) != len(labels):
        raise ValueError(f"{len(views)} views but {len(labels)} labels")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct: {labels}")
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {', '.join(CONTROLS)}, not {control!r}")
    if not 0 <= value < len(views):
        raise ValueError(f"value {value} is not an index of the {len(views)} views")
    children = [
        _as_view(view, alt=f"{description} {label}".strip())
        for view, label in zip(views, labels, strict=True)
    ]
    stack = widgets.Stack(children=children, selected_index=value)
    options = [(label, i) for i, label in enumerate(labels)]
    style = {"description_width": "initial"}
    if control == "slider":
        selector = widgets.SelectionSlider(
            options=options,
            index=value,
            description=description,
            style=style,
            continuous_update=True,
        )
    elif control == "dropdown":
        selector = widgets.Dropdown(
            options=options, index=value, description=description, style=style
        )
    else:
        selector = widgets.ToggleButtons(
            options=options, index=value, description=description, style=style
        )
    link = widgets.jslink((selector, "index"), (stack, "selected_index"))
    box = widgets.VBox([selector, stack])
    box.add_class("toyticket-views")
    # Keep the link alive with the box (a jslink is a widget of its own).
    box._toyticket_link = link
    return box


def view_selector(
    render: Callable[[Any], Any],
    values: Iterable[Any],
    *,
    description: str = "",
    labels: Sequence[str] | None = None,
    control: str = "slider",
    value: Any = None,
):
    """Render one view per value with `render(value)` and select among them in the browser.

    `render` returns a matplotlib Figure (closed after rendering), an HTML string or a widget.
    `labels` name the values on the control (default: ``str(value)``); `value` is the value
    shown first (default: the first). See `views_widget` for the result.

    Every view is computed now, so keep `values` to the handful a reader would compare: the
    saved page holds all of them.
    """
    values = list(values)
    if not values:
        raise ValueError("view_selector needs at least one value")
    if labels is None:
        labels = [str(v) for v in values]
    start = 0 if value is None else values.index(value)
    views = [render(v) for v in values]
    return views_widget(views, labels, description=description, control=control, value=start)
