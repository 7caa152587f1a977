"""Server-drawn SVG bar charts for the pages and the admin: no script, every label escaped."""

from django.utils.html import format_html, format_html_join

LABEL, WIDTH, ROW = 190, 300, 22


def bars(title: str, rows: list, *, top: float | None = None) -> str:
    """A figure of horizontal bars; `rows` are (label, value, value as shown). "" when empty."""
    if not rows:
        return ""
    peak = top or max(value for _, value, _ in rows) or 1
    drawn = format_html_join(
        "",
        '<text x="0" y="{}" font-size="12">{}</text><rect x="{}" y="{}" width="{}" height="16" fill="#4c72b0"/>'
        '<text x="{}" y="{}" font-size="12">{}</text>',
        (
            (
                i * ROW + 13,
                str(label)[:28],
                LABEL,
                i * ROW + 1,
                round(WIDTH * max(0, value) / peak),
                LABEL + round(WIDTH * max(0, value) / peak) + 6,
                i * ROW + 13,
                shown,
            )  # fmt: skip
            for i, (label, value, shown) in enumerate(rows)
        ),
    )
    return format_html(
        '<figure class="chart"><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{}" '
        'height="{}" role="img" aria-label="{}">{}</svg></figure>',
        title, LABEL + WIDTH + 90, len(rows) * ROW + 4, title, drawn,
    )  # fmt: skip
