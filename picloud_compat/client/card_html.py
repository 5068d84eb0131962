"""The HTML of job cards (`cards` reads what goes in them).

Inline styles only (a notebook sanitizes classes and scripts away in untrusted
outputs), colours readable on light and dark themes, and every piece of text that came
from a job, the store or an exception passes through `html.escape`.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field

COLOURS = {
    "done": "#2e7d32",
    "error": "#c62828",
    "killed": "#ad1457",
    "stalled": "#e65100",
    "processing": "#1565c0",
    "queued": "#616161",
    "waiting": "#8d8d8d",
}
GROUPS = {
    "done": "done",
    "error": "failed",
    "killed": "failed",
    "stalled": "failed",
    "processing": "running",
    "queued": "queued",
    "waiting": "queued",
}
"""How a list's card counts statuses (waiting jobs wait for dependencies: queued)."""
GROUP_COLOURS = {
    "done": "#2e7d32",
    "failed": "#c62828",
    "running": "#1565c0",
    "queued": "#9e9e9e",
    "not found": "#bcaaa4",
}
_CARD = (
    "display:inline-block;min-width:18em;max-width:60em;padding:4px 10px;margin:2px 0;"
    "border:1px solid rgba(128,128,128,.45);border-radius:6px;line-height:1.6;"
    "font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px"
)
_DIM = "opacity:.7"
_CHIP = "color:#fff;border-radius:3px;padding:0 6px;font-size:12px;background:"


@dataclass
class JobView:
    """What a job's card shows; `note` says what could not be shown, and why."""

    jid: int
    status: str | None = None
    name: str = ""
    label: str | None = None
    runtime: float | None = None
    outcome: str = ""  # a done job's result, or the exception's last line
    note: str = ""


@dataclass
class ListView:
    """What a list's card shows: counts by group over `counted` statuses read."""

    total: int
    name: str = ""
    label: str | None = None
    head: list[tuple[int, str | None]] = field(default_factory=list)
    groups: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    counted: int = 0
    exact: bool = True
    note: str = ""

    def count(self, statuses: list[str | None], exact: bool) -> None:
        """Count statuses read (all of the list's, or an even sample of them)."""
        self.statuses = Counter(s or "not found" for s in statuses)
        self.groups = Counter()
        for status, n in self.statuses.items():
            self.groups[GROUPS.get(status, "not found")] += n
        self.counted, self.exact = len(statuses), exact

    def estimate(self, group: str) -> int:
        """The group's count in the whole list (scaled from the sample if not exact)."""
        n = self.groups[group]
        return n if self.exact or not self.counted else round(n * self.total / self.counted)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _chip(status: str) -> str:
    colour = COLOURS.get(status, "#757575")
    return f'<span style="{_CHIP}{colour}">{_e(status)}</span>'


def _what(name: str, label: str | None) -> str:
    out = f" <code>{_e(name)}</code>" if name else ""
    return out + (f' <span style="{_DIM}">[{_e(label)}]</span>' if label else "")


def seconds(value: float) -> str:
    """3 ms, 4.2 s, 3 min 20 s, 2 h 5 min."""
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.001 else "<1 ms"
    if value < 60:
        return f"{value:.3g} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60)} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60)} min"


def _card(kind: str, lines: list[str]) -> str:
    body = "".join(f"<div>{line}</div>" for line in lines)
    return f'<div class="picloud-{kind}" style="{_CARD}">{body}</div>'


def job_html(view: JobView) -> str:
    """A one- or two-line card: jid, status, function, label, runtime; then the result
    (done), the exception (failed) or why something is missing."""
    top = f"<b>job {view.jid}</b>"
    if view.status:
        top += " " + _chip(view.status) + _what(view.name, view.label)
        if view.runtime is not None:
            verb = "running for " if view.status == "processing" else ""
            top += f' <span style="{_DIM}">{verb}{_e(seconds(view.runtime))}</span>'
    lines = [top]
    if view.outcome:
        kind = "result" if view.status == "done" else "exception"
        lines.append(f'<span style="{_DIM}">{kind}</span> <code>{_e(view.outcome)}</code>')
    if view.note:
        lines.append(f'<span style="{_DIM}">{_e(view.note)}</span>')
    return _card("job", lines)


def list_html(view: ListView) -> str:
    """Counts by group (done, failed, running, queued), a bar, the first jids."""
    noun = "job" if view.total == 1 else "jobs"
    lines = [f"<b>{view.total:,} {noun}</b>{_what(view.name, view.label)}"]
    if view.counted:
        lines.append(_bar(view))
        lines.append(_legend(view))
    if view.head:
        shown = ", ".join(
            f'<span style="color:{COLOURS.get(st or "", "#9e9e9e")}" '
            f'title="{_e(st or "not found")}">{jid}</span>'
            for jid, st in view.head
        )
        more = view.total - len(view.head)
        lines.append(
            f'<span style="{_DIM}">jids</span> {shown}' + (f", … ({more:,} more)" if more else "")
        )
    if view.counted and not view.exact:
        lines.append(
            f'<span style="{_DIM}">≈ estimated from {view.counted:,} evenly spaced jobs</span>'
        )
    if view.note:
        lines.append(f'<span style="{_DIM}">{_e(view.note)}</span>')
    return _card("jobs", lines)


def _bar(view: ListView) -> str:
    parts = []
    for group, colour in GROUP_COLOURS.items():
        share = 100.0 * view.groups[group] / view.counted
        if share > 0:
            parts.append(
                f'<div style="width:{share:.2f}%;background:{colour}" title="{group}"></div>'
            )
    style = (
        "display:flex;width:20em;height:8px;border-radius:4px;overflow:hidden;"
        "background:rgba(128,128,128,.2);margin:3px 0"
    )
    return f'<div style="{style}">{"".join(parts)}</div>'


def _legend(view: ListView) -> str:
    entries = []
    approx = "" if view.exact else "≈"
    for group, colour in GROUP_COLOURS.items():
        n = view.estimate(group)
        if group == "not found" and not n:
            continue
        detail = ", ".join(
            f"{s} {c:,}"
            for s, c in sorted(view.statuses.items())
            if GROUPS.get(s, "not found") == group
        )
        if detail and not view.exact:
            detail = f"of the {view.counted:,} read: {detail}"
        entries.append(
            f'<span title="{_e(detail)}"><span style="color:{colour}">●</span> '
            f"{group} {approx}{n:,}</span>"
        )
    return " &nbsp;".join(entries)
