"""The Gradio app, the only package that imports gradio.

views: what the page shows, as text and HTML (no gradio); handlers: what each event does; layout: the
components and which handler each event runs; server: launch behind app.webguard. iris.css and iris.js
are the page's stylesheet and start-up script.
"""

from __future__ import annotations

import os

# Gradio's usage analytics would phone home; nothing but model downloads may leave the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from app.ui.layout import build_ui  # noqa: E402
from app.ui.server import launch  # noqa: E402
from app.ui.views import (  # noqa: E402
    attachment_line,
    conversation_view,
    downloads_html,
    gauge_html,
    model_view,
    plain,
    stats_line,
    to_chatbot,
    toast,
)

__all__ = ["build_ui", "launch", "attachment_line", "conversation_view", "downloads_html", "gauge_html",
           "model_view", "plain", "stats_line", "to_chatbot", "toast"]
