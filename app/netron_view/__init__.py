"""Model view: Netron embedded in the studio, served by the app's own Streamlit server, offline, no telemetry."""
from app.netron_view.assets import NetronMissingError, component_dir, netron_package_dir, outside_urls, render_index
from app.netron_view.component import netron_view

__all__ = ["netron_view", "component_dir", "netron_package_dir", "render_index", "outside_urls", "NetronMissingError"]
