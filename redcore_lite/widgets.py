"""One helper for interactive views: ipywidgets controls bound to a pure view function.

``show(view, r_A=(0.0, 1.0, 0.05, 0.2), ...)`` builds one control per keyword, draws
``view(**defaults)`` once, and displays the controls above the drawing. Moving a control redraws
(or, with ``run_button=True``, marks the view stale until "run" is clicked: for expensive views).

Executed headless (papermill, nbval), the default view is drawn exactly once, deterministically, and
nothing else happens; the cell's output carries the live widget and a PNG of the default view
(:func:`view_bundle`), so an executed notebook or the HTML book shows the picture, JupyterLab the
controls; put the call in a cell tagged ``nbval-ignore-output``, end it with ``;``, and draw the
default view again in a checked cell by calling the pure plot function directly. A test drives the
returned :class:`InteractiveView`: set ``view.controls[name].value`` (or call
``view.button.click()``) and read ``view.result`` and ``view.draws``."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeAlias

import ipywidgets as W

__all__ = ["InteractiveView", "show", "control", "view_bundle"]

ControlSpec: TypeAlias = "W.ValueWidget | tuple | list | bool"


def _kernel() -> bool:
    """True inside an IPython kernel (a notebook, papermill, nbval), False in plain Python."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def control(name: str, spec: ControlSpec) -> W.ValueWidget:
    """A widget from a spec: a widget (kept), ``(min, max, step, value)`` (an Int- or FloatSlider),
    a bool (a Checkbox) or a list of options (a Dropdown, first option selected).

    Raises:
        ValueError: for any other spec, naming the control.
    """
    style = {"description_width": "initial"}
    if isinstance(spec, W.ValueWidget):
        if not spec.description:
            spec.description = name
        return spec
    if isinstance(spec, bool):
        return W.Checkbox(value=spec, description=name)
    if isinstance(spec, tuple) and len(spec) == 4 and all(isinstance(v, (int, float)) for v in spec):
        lo, hi, step, value = spec
        cls = W.IntSlider if all(isinstance(v, int) for v in spec) else W.FloatSlider
        return cls(value=value, min=lo, max=hi, step=step, description=name, style=style,
                   continuous_update=False)
    if isinstance(spec, list) and spec:
        return W.Dropdown(options=spec, value=spec[0], description=name, style=style)
    raise ValueError(f"{name}: got control spec {spec!r}; allowed: an ipywidgets value widget, "
                     "(min, max, step, value), a bool, or a non-empty list of options")


class InteractiveView:
    """Controls, an output area and (optionally) a run button bound to ``view(**values)``."""

    def __init__(self, view: Callable[..., Any], controls: dict[str, W.ValueWidget],
                 run_button: bool = False, fixed: dict[str, Any] | None = None) -> None:
        self.view, self.controls, self.fixed = view, controls, dict(fixed or {})
        self.output = W.Output()
        self.button = W.Button(description="run", button_style="primary") if run_button else None
        self.status = W.Label(value="")
        self.result: Any = None  # what the last draw returned (usually a closed Figure)
        self.draws = 0  # how many times the view has been drawn
        self.seconds = 0.0  # wall time of the last draw
        for widget in controls.values():
            widget.observe(self._changed, names="value")
        if self.button is not None:
            self.button.on_click(self._clicked)
        bar = list(controls.values()) + ([self.button, self.status] if run_button else [])
        self.widget = W.VBox([W.HBox(bar, layout=W.Layout(flex_flow="row wrap")), self.output])

    @property
    def values(self) -> dict[str, Any]:
        """The keyword arguments the view is called with now."""
        return {**self.fixed, **{name: w.value for name, w in self.controls.items()}}

    def redraw(self) -> Any:
        """Call the view with the current values and show what it returns; return that."""
        start = time.perf_counter()
        result = self.view(**self.values)
        self.seconds = time.perf_counter() - start
        self.result, self.draws = result, self.draws + 1
        if _kernel():
            self.output.clear_output(wait=True)
            if result is not None:
                with self.output:
                    from IPython.display import display

                    display(*(result if isinstance(result, tuple) else (result,)))
        return result

    def _live_redraw(self) -> None:
        """Redraw from a widget event; a live kernel shows an exception in the output area."""
        if self.button is not None:
            self.status.value = "running…"
        with self.output:
            self.redraw()
        if self.button is not None:
            self.status.value = ""

    def _changed(self, change: dict[str, Any]) -> None:
        if self.button is None:
            self._live_redraw()
        else:
            self.status.value = "changed: click run"

    def _clicked(self, _button: W.Button) -> None:
        self._live_redraw()

    def __repr__(self) -> str:
        return f"InteractiveView(controls={list(self.controls)}, draws={self.draws})"


def show(view: Callable[..., Any], *, run_button: bool = False, fixed: dict[str, Any] | None = None,
         display: bool = True, **controls: ControlSpec) -> InteractiveView:
    """Bind controls to a pure view function, draw the default view once and display it all.

    Args:
        view: called as ``view(**fixed, **{name: control value})``; returns what to show (a Figure,
            or a tuple of things shown one below the other, e.g. a table and a Figure).
        run_button: redraw only when "run" is clicked (for views that train a model).
        fixed: keyword arguments passed unchanged on every call (data, a config).
        display: display the widgets now (inside a kernel only).
        **controls: one control per keyword of ``view``; see :func:`control` for the specs.
    Returns:
        The :class:`InteractiveView` (end the notebook line with ``;`` so it is not echoed).
    """
    built = {name: control(name, spec) for name, spec in controls.items()}
    iv = InteractiveView(view, built, run_button=run_button, fixed=fixed)
    iv.redraw()
    if display and _kernel():
        from IPython.display import display as ipy_display

        ipy_display(view_bundle(iv), raw=True)
    return iv


def _png(result: Any) -> str | None:
    """The first matplotlib Figure of a view's result (a Figure or a tuple) as base64 PNG, else None."""
    from matplotlib.figure import Figure

    for part in result if isinstance(result, tuple) else (result,):
        if isinstance(part, Figure):
            import base64
            import io

            buf = io.BytesIO()
            part.savefig(buf, format="png", bbox_inches="tight")
            return base64.b64encode(buf.getvalue()).decode("ascii")
    return None


def view_bundle(iv: InteractiveView) -> dict[str, Any]:
    """What a cell shows for an interactive view: the live widget where a widget manager runs
    (JupyterLab ranks the widget MIME type first), else a picture of the default view (an executed
    notebook opened without its kernel, the HTML book), else one line of text: never the widget's
    repr (``VBox(children=(HBox(...``)."""
    bundle: dict[str, Any] = {
        "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                     "model_id": iv.widget.model_id},
        "text/plain": f"interactive view of {getattr(iv.view, '__name__', 'a function')} "
                      f"(controls: {', '.join(iv.controls)}); open the notebook in JupyterLab to move them",
    }
    png = _png(iv.result)
    if png is not None:
        bundle["image/png"] = png
    return bundle
