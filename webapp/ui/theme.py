"""How the page looks and what runs in the browser: the theme (system fonts only), CSS and head
tags, the logo, and the JavaScript of the HTML panels (clicks, scrolling)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
STATIC = ROOT / "webapp" / "static"
SANS_FONTS = (
    "system-ui",
    "-apple-system",
    "Segoe UI",
    "Roboto",
    "Helvetica Neue",
    "Arial",
    "sans-serif",
)
MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace")

# Clicks inside the HTML panels become one 'click' event carrying what was clicked.
CLICK_JS = """
element.addEventListener('click', (e) => {
  const el = e.target.closest('[data-action]');
  if (!el || !element.contains(el)) return;
  e.preventDefault();
  const d = el.dataset;
  if (d.action === 'cite' && !d.turn) return;
  trigger('click', {action: d.action, turn: d.turn || '', n: d.n || '', rating: d.rating || '',
                    conv: d.conv || ''});
});
"""
TRANSCRIPT_JS = (
    CLICK_JS
    + """
const scroller = () => element.closest('.rc-scroll') || element.parentElement;
watch('value', () => {
  const box = scroller();
  if (!box) return;
  if (element.querySelector('.rc-streaming') || box.dataset.stick !== 'no') {
    box.scrollTop = box.scrollHeight;
  }
});
"""
)
SOURCES_JS = (
    CLICK_JS
    + """
watch('value', () => {
  const target = element.querySelector('.rc-citation') || element.querySelector('.is-focused');
  if (target) target.scrollIntoView({block: 'nearest', behavior: 'smooth'});
});
"""
)
HEAD = (
    '<meta name="description" content="ragchat: chat with your documents, offline">'
    '<link rel="icon" type="image/png" href="favicon.ico">'
    # gradio scopes custom CSS inside the app; the page padding lies outside it
    "<style>@media (max-width: 760px) { .gradio-container > .main.app "
    "{ padding-left: 8px !important; padding-right: 8px !important; } }</style>"
)


def logo_svg() -> str:
    """The logo's SVG markup for the header (nothing if the file is missing)."""
    try:
        return (ASSETS / "logo.svg").read_text(encoding="utf-8")
    except OSError:
        return ""


def theme() -> gr.themes.Base:
    """A calm theme that uses system fonts only, so the page fetches nothing from the web."""
    return gr.themes.Soft(
        primary_hue=gr.themes.colors.indigo,
        secondary_hue=gr.themes.colors.slate,
        neutral_hue=gr.themes.colors.slate,
        radius_size=gr.themes.sizes.radius_md,
        font=[gr.themes.Font(name) for name in SANS_FONTS],
        font_mono=[gr.themes.Font(name) for name in MONO_FONTS],
    )


def launch_options() -> dict[str, Any]:
    """What `Blocks.launch` needs besides host and port (gradio 6 takes theme and CSS there)."""
    css_path = STATIC / "ragchat.css"
    favicon = ASSETS / "favicon.png"
    return {
        "theme": theme(),
        "css_paths": [css_path] if css_path.exists() else None,
        "head": HEAD,
        "favicon_path": str(favicon) if favicon.exists() else None,
        "ssr_mode": False,
        "footer_links": ["api"],
        "show_error": False,
    }
