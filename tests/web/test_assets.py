"""``careregister assets``: pinned npm packages, refused unless their sha512 matches."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import httpx
import pytest

from register.web import assets
from register.web.assets import AssetError, Package, fetch, sri, unpack


def _tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


GOOD = _tarball(
    {
        "package/dist/a.css": b"body{}",
        "package/dist/assets/images/x.svg": b"<svg/>",
        "package/README.md": b"not wanted",
    }
)
FILES = {"package/dist/a.css": "a.css", "package/dist/assets/": "assets/"}


def _package(integrity: str) -> Package:
    return Package(name="demo-pkg", version="1.2.3", integrity=integrity, files=FILES)


def _registry(tarball: bytes, listed: str) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/demo-pkg/1.2.3":
            return httpx.Response(200, json={"dist": {"integrity": listed}})
        if request.url.path == "/demo-pkg/-/demo-pkg-1.2.3.tgz":
            return httpx.Response(200, content=tarball)
        return httpx.Response(404)

    return httpx.MockTransport(handle)


def test_the_shipped_pins_are_exact_versions_with_sha512() -> None:
    registry, packages = assets.manifest()
    assert registry == "https://registry.npmjs.org"
    assert {p.name for p in packages} >= {"nhsuk-frontend", "chart.js", "axe-core"}
    for package in packages:
        assert re.fullmatch(r"\d+\.\d+\.\d+", package.version), package.name
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", package.integrity), package.name


def test_a_matching_tarball_is_unpacked_with_only_the_listed_files(tmp_path, monkeypatch) -> None:
    package = _package(sri(GOOD))
    monkeypatch.setattr(assets, "manifest", lambda: ("https://registry.test", [package]))
    client = httpx.Client(transport=_registry(GOOD, package.integrity))
    assert fetch(tmp_path, client=client) == ["demo-pkg@1.2.3"]
    assert (tmp_path / "demo-pkg" / "a.css").read_bytes() == b"body{}"
    assert (tmp_path / "demo-pkg" / "assets" / "images" / "x.svg").is_file()
    assert not (tmp_path / "demo-pkg" / "README.md").exists()
    assert fetch(tmp_path, client=client) == []  # stamped: nothing fetched again


def test_a_tarball_whose_hash_differs_from_the_pin_is_refused(tmp_path, monkeypatch) -> None:
    package = _package(sri(b"something else"))
    monkeypatch.setattr(assets, "manifest", lambda: ("https://registry.test", [package]))
    client = httpx.Client(transport=_registry(GOOD, package.integrity))
    with pytest.raises(AssetError, match="hash mismatch"):
        fetch(tmp_path, client=client)
    assert not (tmp_path / "demo-pkg" / "a.css").exists()


def test_registry_metadata_that_disagrees_with_the_pin_is_refused(tmp_path, monkeypatch) -> None:
    package = _package(sri(GOOD))
    monkeypatch.setattr(assets, "manifest", lambda: ("https://registry.test", [package]))
    client = httpx.Client(transport=_registry(GOOD, sri(b"republished")))
    with pytest.raises(AssetError, match="integrity"):
        fetch(tmp_path, client=client)


def test_members_cannot_escape_the_target_folder(tmp_path: Path) -> None:
    evil = _tarball({"package/dist/a.css": b"x", "package/dist/assets/../../../../escape": b"!"})
    unpack(evil, _package(sri(evil)), tmp_path / "target")
    assert not any(p.name == "escape" for p in tmp_path.rglob("*"))
