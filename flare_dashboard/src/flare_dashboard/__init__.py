"""The Flare dashboard: entries, error groups and stats of an app, at ``/flare``.

Installed next to flare-core, it registers through the ``flare`` entry-point
group and mounts itself during ``setup(app)``. See the README for its routes,
JSON API and security model.
"""

from __future__ import annotations

from .plugin import mount_dashboard
from .security import CONTENT_SECURITY_POLICY, CSRF_HEADER

__all__ = ["CONTENT_SECURITY_POLICY", "CSRF_HEADER", "mount_dashboard"]
