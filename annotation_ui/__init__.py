"""The annotation web app (FastAPI + one static page) over ``engine.annotations``.

Start it with ``sodforge annotate --images DIR --workdir DIR``; build it in code with
``create_app(UISettings(images=..., workdir=...))``.
"""

from annotation_ui.app import create_app
from annotation_ui.state import UISettings

__all__ = ["UISettings", "create_app"]
