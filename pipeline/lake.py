"""The data lake: one URI scheme for a local folder (file://) or S3 (s3://, through boto3).

Writes are atomic: a local file is written under a temporary name and renamed; an S3
object only appears once its upload completes. Paths are built by callers from the
logical date, so re-running a date overwrites the same objects.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlparse

import pandas as pd


@dataclass(frozen=True)
class Lake:
    """A root URI plus the S3 endpoint (empty: AWS default chain and endpoint)."""

    root: str
    s3_endpoint_url: str = ""

    def uri(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *(p.strip("/") for p in parts if p)])

    # --- bytes ---------------------------------------------------------------
    def read_bytes(self, uri: str) -> bytes:
        scheme, bucket, key = _split(uri)
        if scheme == "s3":
            return self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        return Path(key).read_bytes()

    def write_bytes(self, uri: str, data: bytes) -> str:
        scheme, bucket, key = _split(uri)
        if scheme == "s3":
            self._s3().put_object(Bucket=bucket, Key=key, Body=data)
            return uri
        _atomic_local(Path(key), lambda tmp: tmp.write_bytes(data))
        return uri

    def get_file(self, uri: str, path: Path) -> Path:
        """Copy one object to a local file, streamed (large drops never sit in memory)."""
        scheme, bucket, key = _split(uri)
        if scheme == "s3":
            self._s3().download_file(bucket, key, str(path))
        else:
            shutil.copyfile(key, path)
        return path

    def put_file(self, path: Path, uri: str) -> str:
        """Upload a local file, atomically: a temporary name renamed locally; on S3 the
        object becomes visible only when its (multipart) upload completes."""
        scheme, bucket, key = _split(uri)
        if scheme == "s3":
            self._s3().upload_file(str(path), bucket, key)
            return uri
        _atomic_local(Path(key), lambda tmp: shutil.copyfile(path, tmp))
        return uri

    def create_exclusive(self, uri: str, data: bytes) -> bool:
        """Write ``uri`` only if it does not exist yet; False when it already does. Atomic
        on a local disk (O_EXCL) and on S3 (a conditional put, If-None-Match: *)."""
        scheme, bucket, key = _split(uri)
        if scheme == "s3":
            from botocore.exceptions import ClientError

            try:
                self._s3().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                raise
            return True
        path = Path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return True

    def exists(self, uri: str) -> bool:
        scheme, bucket, key = _split(uri)
        if scheme == "s3":
            return bool(self._s3().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents"))
        return Path(key).exists()

    def list(self, prefix_uri: str) -> list[str]:
        """Every file under a folder URI, sorted, hidden and temporary files excluded."""
        scheme, bucket, key = _split(prefix_uri)
        if scheme == "s3":
            prefix = key.rstrip("/") + "/"
            names: list[str] = []
            for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                names += [f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", [])]
            # keys ending in "/" are folder markers some S3 tools write, not files
            return sorted(n for n in names if not n.endswith("/") and not n.rsplit("/", 1)[-1].startswith("."))
        base = Path(key)
        if not base.is_dir():
            return []
        return sorted(  # "%" escaped, as _split unquotes: a name holding "%2F" stays one name
            prefix_uri.rstrip("/") + "/" + p.relative_to(base).as_posix().replace("%", "%25")
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def name_in(self, prefix_uri: str, uri: str) -> str:
        """The path of ``uri`` below ``prefix_uri``, as the file is really named."""
        rel = uri[len(prefix_uri.rstrip("/")):].lstrip("/")
        return unquote(rel) if _split(uri)[0] == "file" else rel

    def delete(self, uri: str) -> None:
        scheme, bucket, key = _split(uri)
        if scheme == "s3":
            self._s3().delete_object(Bucket=bucket, Key=key)
        else:
            Path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix_uri: str) -> None:
        for uri in self.list(prefix_uri):
            self.delete(uri)

    # --- typed helpers ---------------------------------------------------------
    def write_parquet(self, uri: str, frame: pd.DataFrame) -> str:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return self.write_bytes(uri, buffer.getvalue())

    def read_parquet(self, uri: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.read_bytes(uri)))

    def write_json(self, uri: str, payload: Any) -> str:
        return self.write_bytes(uri, json.dumps(payload, indent=2, default=str).encode())

    def read_json(self, uri: str) -> Any:
        return json.loads(self.read_bytes(uri))

    def write_text(self, uri: str, text: str) -> str:
        return self.write_bytes(uri, text.encode("utf-8"))

    def _s3(self) -> Any:
        import boto3  # only the S3 lake needs it

        return boto3.client("s3", endpoint_url=self.s3_endpoint_url or None)


def _atomic_local(target: Path, write: Callable[[Path], object]) -> None:
    """Write through a hidden temporary file beside ``target``, then rename it into place:
    a reader sees the old file or the new one, never half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; lake files are meant to be shared
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _split(uri: str) -> tuple[str, str, str]:
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return "s3", parsed.netloc, parsed.path.lstrip("/")
    if parsed.scheme in ("file", ""):
        return "file", "", unquote(parsed.path) if parsed.scheme else uri
    raise ValueError(f"unsupported lake URI {uri!r}: use file:// or s3://")


def lake_from_settings(settings: Any) -> Lake:
    return Lake(settings.lake_uri, settings.s3_endpoint_url)


def landing_lake(settings: Any) -> Lake:
    return Lake(settings.landing, settings.s3_endpoint_url)
