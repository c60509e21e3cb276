"""Vigie's Grafana dashboards as code: :mod:`grafana.schema` (the subset of Grafana's dashboard JSON
we emit, as strict pydantic models), :mod:`grafana.panels` (builders), one module per dashboard in
:mod:`grafana.dashboards`, :mod:`grafana.build` (writes the provisioning files) and
:mod:`grafana.expand` (Grafana's macro and variable expansion, for the tests). See grafana/README.md."""
