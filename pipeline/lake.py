"""The data lake: one URI scheme for a local folder (file://) or S3 (s3://, through boto3).

Writes are atomic: a local file is written under a temporary name and renamed; an S3
object only appears once its upload completes. Paths are built by callers from the
logical date, so re-running a date overwrites the same objects. S3 calls are retried with
backoff and time out (:class:`S3Options`); one that still fails raises :class:`LakeError`
naming its URI, and a full disk raises ``OSError(ENOSPC)`` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlparse

import pandas as pd


class LakeError(OSError):
    """An S3 call that failed for good (after its retries); the message names the URI."""


@dataclass(frozen=True)
class S3Options:
    """Retries and timeouts of the S3 client: botocore's ``standard`` mode retries
    throttling, 5xx answers, refused connections and timeouts with exponential backoff."""

    retry_mode: str = "standard"
    max_attempts: int = 5  # the first try included
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


@dataclass(frozen=True)
class Lake:
    """A root URI plus the S3 endpoint (empty: AWS default chain and endpoint)."""

    root: str
    s3_endpoint_url: str = ""
    s3: S3Options = S3Options()

    def uri(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *(p.strip("/") for p in parts if p)])

    # --- bytes ---------------------------------------------------------------
    def read_bytes(self, uri: str) -> bytes:
        scheme, bucket, key = _split(uri)
        if scheme == "s3":
            with _s3_errors("read", uri):
                return self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        return Path(key).read_bytes()

    def write_bytes(self, uri: str, data: bytes) -> str:
        scheme, bucket, key = _split(uri)
        if scheme == "s3":
            with _s3_errors("write", uri):
                self._s3().put_object(Bucket=bucket, Key=key, Body=data)
            return uri
        _atomic_local(Path(key), lambda tmp: tmp.write_bytes(data))
        return uri

    def get_file(self, uri: str, path: Path) -> Path:
        """Copy one object to a local file, streamed (large drops never sit in memory)."""
        scheme, bucket, key = _split(uri)
        if scheme == "s3":
            with _s3_errors("download", uri):
                self._s3().download_file(bucket, key, str(path))
        else:
            shutil.copyfile(key, path)
        return path

    def put_file(self, path: Path, uri: str) -> str:
        """Upload a local file, atomically: a temporary name renamed locally; on S3 the
        object becomes visible only when its (multipart) upload completes."""
        scheme, bucket, key = _split(uri)
        if scheme == "s3":
            with _s3_errors("upload", uri):  # a failed multipart upload is aborted, never visible
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
                with _s3_errors("create", uri, passing=ClientError):
                    self._s3().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                raise _lake_error("create", uri, exc) from exc
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
            with _s3_errors("check", uri):
                return bool(self._s3().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents"))
        return Path(key).exists()

    def list(self, prefix_uri: str) -> list[str]:
        """Every file under a folder URI, sorted, hidden and temporary files excluded."""
        scheme, bucket, key = _split(prefix_uri)
        if scheme == "s3":
            prefix = key.rstrip("/") + "/"
            names: list[str] = []
            with _s3_errors("list", prefix_uri):
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
            with _s3_errors("delete", uri):
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
        from botocore.config import Config

        config = Config(retries={"mode": self.s3.retry_mode, "total_max_attempts": self.s3.max_attempts},
                        connect_timeout=self.s3.connect_timeout, read_timeout=self.s3.read_timeout)
        return boto3.client("s3", endpoint_url=self.s3_endpoint_url or None, config=config)


@contextlib.contextmanager
def _s3_errors(action: str, uri: str, passing: type[BaseException] | tuple[()] = ()) -> Iterator[None]:
    """S3 failures as lake errors naming the URI: a missing object is FileNotFoundError (as
    on a local disk), anything else that outlived the retries is :class:`LakeError`."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError
    from s3transfer.exceptions import RetriesExceededError, S3DownloadFailedError, S3UploadFailedError

    try:
        yield
    except passing:
        raise
    except (ClientError, BotoCoreError, Boto3Error, RetriesExceededError, S3DownloadFailedError,
            S3UploadFailedError) as exc:
        raise _lake_error(action, uri, exc) from exc


def _lake_error(action: str, uri: str, exc: BaseException) -> OSError:
    code = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
    if code in ("NoSuchKey", "404", "NotFound"):
        return FileNotFoundError(errno.ENOENT, f"no such object ({action})", uri)
    return LakeError(f"S3 {action} of {uri} failed: {exc}")


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
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        # a failed write() names no file, and copyfile names the source and the temporary file
        if exc.filename is None or exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise
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


def lake_at(settings: Any, root: str) -> Lake:
    """A lake rooted at ``root`` with the S3 endpoint, retries and timeouts of ``settings``."""
    s3 = settings.s3
    return Lake(root, settings.s3_endpoint_url, S3Options(s3.retry_mode, s3.max_attempts, s3.connect_timeout_seconds,
                                                          s3.read_timeout_seconds))


def lake_from_settings(settings: Any) -> Lake:
    return lake_at(settings, settings.lake_uri)


def landing_lake(settings: Any) -> Lake:
    return lake_at(settings, settings.landing)
