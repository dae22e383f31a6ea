"""Front-end packages from the npm registry, fetched at set-up time (``careregister assets``).

The pages use the NHS.UK frontend styles, Chart.js for charts and (in tests) axe-core. None of
them is committed: ``register/data/web-assets.json`` pins each package's version and the
registry's ``dist.integrity`` (sha512), and this module downloads the tarball over HTTPS, refuses
it unless its hash matches both the pin and the registry's metadata, and unpacks only the listed
files into ``REGISTER_WEB_ASSETS_DIR`` (``<package>/...``). A fresh machine needs Python only.

Running it again is cheap: a package whose folder holds a stamp with the pinned integrity is
left alone.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

STAMP = ".integrity"


@dataclass(frozen=True)
class Package:
    """One pinned npm package and the files the pages need from it."""

    name: str
    version: str
    integrity: str
    files: dict[str, str]
    test_only: bool = False

    @property
    def tarball_url_path(self) -> str:
        """Path of the tarball under the registry (``/name/-/name-version.tgz``)."""
        return f"/{self.name}/-/{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"


class AssetError(RuntimeError):
    """A package could not be fetched or did not match its pin."""


def manifest() -> tuple[str, list[Package]]:
    """The registry URL and the pinned packages (from ``register/data/web-assets.json``)."""
    text = resources.files("register").joinpath("data/web-assets.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    packages = [
        Package(
            name=p["name"],
            version=p["version"],
            integrity=p["integrity"],
            files=dict(p["files"]),
            test_only=bool(p.get("test_only", False)),
        )
        for p in data["packages"]
    ]
    return str(data["registry"]).rstrip("/"), packages


def sri(data: bytes) -> str:
    """The Subresource Integrity string (``sha512-<base64>``) of ``data``, as npm records it."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def installed(folder: Path, package: Package) -> bool:
    """Whether ``package`` at its pinned integrity is already unpacked under ``folder``."""
    stamp = folder / package.name / STAMP
    return stamp.is_file() and stamp.read_text("utf-8").strip() == package.integrity


def unpack(tarball: bytes, package: Package, target: Path) -> list[Path]:
    """Write the listed files of ``tarball`` under ``target`` (nothing outside it, no links)."""
    written: list[Path] = []
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            destination = _destination(member.name, package.files)
            if destination is None:
                continue
            path = (target / destination).resolve()
            if not path.is_relative_to(target.resolve()):
                raise AssetError(f"{package.name}: {member.name} would land outside {target}")
            extracted = archive.extractfile(member)
            if extracted is None:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(extracted.read())
            written.append(path)
    missing = [src for src in package.files if not src.endswith("/") and not _found(src, written)]
    if missing:
        raise AssetError(f"{package.name}: not in the tarball: {missing}")
    return written


def _found(source: str, written: list[Path]) -> bool:
    return any(str(path).endswith(PurePosixPath(source).name) for path in written)


def _destination(name: str, files: dict[str, str]) -> str | None:
    for source, destination in files.items():
        if source.endswith("/") and name.startswith(source):
            rest = name[len(source) :]
            if ".." in PurePosixPath(rest).parts:
                return None
            return destination + rest
        if name == source:
            return destination
    return None


def fetch(
    folder: Path,
    *,
    include_test: bool = True,
    client: httpx.Client | None = None,
) -> list[str]:
    """Install every pinned package missing from ``folder``; the names of those installed."""
    registry, packages = manifest()
    done: list[str] = []
    own = client is None
    http = client or httpx.Client(timeout=60.0, follow_redirects=True)
    try:
        for package in packages:
            if (package.test_only and not include_test) or installed(folder, package):
                continue
            metadata = http.get(f"{registry}/{package.name}/{package.version}")
            metadata.raise_for_status()
            listed = metadata.json().get("dist", {}).get("integrity")
            if listed != package.integrity:
                raise AssetError(
                    f"{package.name}@{package.version}: the registry lists integrity {listed!r},"
                    " not the pinned one"
                )
            tarball = http.get(registry + package.tarball_url_path)
            tarball.raise_for_status()
            if sri(tarball.content) != package.integrity:
                raise AssetError(f"{package.name}@{package.version}: tarball hash mismatch")
            target = folder / package.name
            target.mkdir(parents=True, exist_ok=True)
            unpack(tarball.content, package, target)
            (target / STAMP).write_text(package.integrity + "\n", "utf-8")
            done.append(f"{package.name}@{package.version}")
    except httpx.HTTPError as exc:
        raise AssetError(f"could not fetch from {registry}: {type(exc).__name__}") from None
    finally:
        if own:
            http.close()
    return done


def missing(folder: Path) -> list[str]:
    """Pinned packages the pages need (not test-only) that are not installed in ``folder``."""
    _, packages = manifest()
    return [p.name for p in packages if not p.test_only and not installed(folder, p)]
