"""One module per dashboard, each with ``build(cfg: BuildConfig) -> Dashboard`` and ``FOLDER``
(the provisioning folder it goes to: ``vigie`` or ``staff-only``)."""

from grafana.dashboards import heating, homes, meter, service_health, water_network

#: Every dashboard module, in the order the README lists them.
MODULES = (water_network, meter, heating, homes, service_health)
