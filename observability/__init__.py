"""Observability for the platform: Prometheus (scrape config, alert rules and their promtool
tests), node-exporter for the pipeline's textfile metrics, and a Grafana dashboard with its
provisioning files. Nothing here is imported by the pipeline, the service or the monitor."""
