"""The one Dagster resource: the project's settings (and the storage built from them).

Assets, the capture op and the checks read the *same* settings as the CLI capture
(``config/system.yaml`` + env such as ``DATA_DIR``, the z-engine knobs …) through
:func:`ofi_cvd_harvest.settings.load_settings`; the resource only lets a run point at another
config file or data root without touching the environment. It is resolved lazily, per
run, so a run picks up the environment of the process that executes it.
"""

from __future__ import annotations


import dagster as dg

from ..settings import Settings, load_settings
from ..storage.fs import Storage
from ..storage.objectstore import data_root

RESOURCE_KEY = "harvest"


class HarvestSettings(dg.ConfigurableResource):
    """Settings for a run. Empty fields mean "as the config file / environment say"."""

    config_path: str = ""
    data_dir: str = ""

    def settings(self, **overrides) -> Settings:
        """Validated :class:`Settings` (raises ``SettingsError`` naming a bad setting)."""
        if self.data_dir:
            overrides.setdefault("data_dir", data_root(self.data_dir))
        return load_settings(self.config_path or None, **overrides)

    def storage(self) -> Storage:
        """The data root every file access goes through (a local path or ``s3://bucket/prefix``)."""
        return Storage(self.settings().data_dir)


def metrics_url(settings: Settings) -> str:
    """Where the capture's Prometheus endpoint is served (linked from run/op metadata)."""
    return f"http://{settings.prometheus_host}:{settings.prometheus_port}/metrics"
