"""Team mode: the shared services several people's runs use instead of one machine's sqlite file.

`python -m stack.team up|down|status` (`make team-up`, `make team-down`, `make team-status`)
starts and stops, on 127.0.0.1 with all state under one folder (`team/` by default), PostgreSQL
(the MLflow backend store), SeaweedFS's S3 gateway (the artifact store) and an MLflow tracking
server that proxies artifacts, so clients need only MLFLOW_TRACKING_URI.
"""
