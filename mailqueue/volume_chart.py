"""The Scripts e-mail page's chart of 30 days (SPEC §5), drawn as server-side SVG: round steps on
both axes, sent e-mails as bars, e-mails in error as a line on their own axis."""


def _nice_step(value: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50… that is at least `value`: a step a reader counts in."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if factor * magnitude >= value:
                return factor * magnitude
        magnitude *= 10


def _axis(peak: int, intervals: int) -> tuple[int, int]:
    """(step, top) of an axis of `intervals` round steps that holds `peak`; top is never the peak itself."""
    step = _nice_step(max(peak, 1) / intervals)
    return step, step * intervals


# The chart's two drawings: wide for a laptop, narrow and taller (fewer dates) for a phone.
CHART_SIZES = {
    "wide": {"width": 720, "height": 220, "label_every": 5, "intervals": 4},
    "narrow": {"width": 340, "height": 240, "label_every": 10, "intervals": 3},
}


def _svg(value: float, digits: int = 1) -> str:
    """A coordinate as SVG reads it (a dot, never the language's decimal comma)."""
    return f"{value:.{digits}f}"


def chart_geometry(volumes: list[dict], *, width: int, height: int, label_every: int, intervals: int) -> dict:
    """Geometry of the 30-day chart, drawn as server-side SVG (no script, no CDN): sent e-mails as
    bars on the left axis, e-mails in error as a line on their own right axis, so that 3 errors
    beside 60 sent stay visible. Both axes share the grid, each counted in round steps."""
    left, right, bottom, top = 40, 36, 30, 12
    sent_step, sent_top = _axis(max(v["sent"] for v in volumes), intervals)
    error_step, error_top = _axis(max(v["errors"] for v in volumes), intervals)
    plot = height - bottom - top
    slot = (width - left - right) / len(volumes)
    bar = max(2.0, slot - 2)
    bars = []
    for index, volume in enumerate(volumes):
        x = left + index * slot + 1
        sent_h = volume["sent"] * plot / sent_top
        bars.append(
            {
                "day": volume["day"],
                "sent": volume["sent"],
                "errors": volume["errors"],
                "sent_x": _svg(x, 1),
                "sent_y": _svg(height - bottom - sent_h, 1),
                "sent_h": _svg(sent_h, 1),
                "error_cx": _svg(x + bar / 2, 1),
                "error_cy": _svg(height - bottom - volume["errors"] * plot / error_top, 1),
                "label": index % label_every == 0 or index == len(volumes) - 1,
                "label_x": _svg(x + bar / 2, 1),
            }
        )
    ticks = [
        {
            "value": sent_step * index,
            "errors": error_step * index,
            "y": _svg(height - bottom - index * plot / intervals, 1),
        }
        for index in range(intervals + 1)
    ]
    return {
        "width": str(width),
        "height": str(height),
        "bar": _svg(bar, 1),
        "bars": bars,
        "ticks": ticks,
        "error_line": " ".join(f"{b['error_cx']},{b['error_cy']}" for b in bars),
        "left": str(left),
        "tick_left": str(left - 6),
        "plot_right": str(width - right),
        "tick_right": str(width - right + 6),
        "label_y": str(height - 10),
        "sent_30_days": sum(v["sent"] for v in volumes),
        "errors_30_days": sum(v["errors"] for v in volumes),
    }
