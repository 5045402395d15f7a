"""The web app: one Gradio page over the same API the CLI uses (cast, story, style, generate).

``storyface.app.ui.launch`` is the entry point; ``build_demo(services)`` builds the page around
already-started :class:`~storyface.app.services.Services`. Importing this package loads no model.
"""

from __future__ import annotations

import os

# Gradio reads this when it is imported; the app never phones home (Blocks also gets analytics_enabled=False).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
