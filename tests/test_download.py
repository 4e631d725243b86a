"""Downloads without a network: offline errors, Range resume and archive extraction with a fake ``urlopen``."""
from __future__ import annotations

import io
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from benchmark.datasets import ESC50Source, SpeechCommandsSource
from benchmark.datasets import download as dl
from benchmark.errors import DataError
from fixtures import make_esc50_fixture, make_speechcommands_fixture


class FakeResponse(io.BytesIO):
    """Enough of ``http.client.HTTPResponse`` for :func:`download_file`, honouring ``Range: bytes=N-``."""

    def __init__(self, payload: bytes, request: urllib.request.Request, honour_range: bool = True) -> None:
        rng = request.get_header("Range")
        start = int(rng.split("=")[1].rstrip("-")) if rng and honour_range else 0
        super().__init__(payload[start:])
        self.status = 206 if start else 200
        self.headers = {"Content-Length": str(len(payload) - start)}

    def getcode(self) -> int:
        return self.status


def serve(monkeypatch: pytest.MonkeyPatch, payload: bytes, honour_range: bool = True) -> list[urllib.request.Request]:
    requests: list[urllib.request.Request] = []

    def fake_urlopen(request, timeout=None):
        requests.append(request)
        return FakeResponse(payload, request, honour_range)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return requests


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_urlopen(request, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)


def test_offline_download_says_where_to_put_the_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    offline(monkeypatch)
    with pytest.raises(DataError) as err:
        dl.download_esc50(tmp_path / "esc50", progress=False)
    message = str(err.value)
    assert f"could not reach {dl.ESC50_URL}" in message and "by hand" in message
    assert str(tmp_path / "esc50" / "meta" / "esc50.csv") in message
    with pytest.raises(DataError, match="could not reach .*speech_commands_v0.02.tar.gz.*by hand"):
        dl.download_speechcommands(tmp_path / "sc", progress=False)


def test_download_resumes_a_partial_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 40
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(payload[:1000])
    requests = serve(monkeypatch, payload)
    assert dl.download_file("http://example/file.bin", dest, progress=False) == dest
    assert dest.read_bytes() == payload and not (tmp_path / "file.bin.part").exists()
    assert requests[0].get_header("Range") == "bytes=1000-"
    # an existing complete file is not fetched again
    dl.download_file("http://example/file.bin", dest, progress=False)
    assert len(requests) == 1


def test_download_restarts_when_the_server_ignores_range(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    payload = b"0123456789" * 100
    (tmp_path / "f.part").write_bytes(b"junk")
    serve(monkeypatch, payload, honour_range=False)
    assert dl.download_file("http://example/f", tmp_path / "f", progress=False).read_bytes() == payload


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_extract_zip_and_tar(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_bytes({"top/meta/esc50.csv": b"x", "top/audio/1.wav": b"y"}))
    out = dl.extract_archive(archive, tmp_path / "zip-out")
    assert (out / "top" / "meta" / "esc50.csv").read_bytes() == b"x"

    source = tmp_path / "tree"
    (source / "yes").mkdir(parents=True)
    (source / "yes" / "a_nohash_0.wav").write_bytes(b"z")
    tar_path = tmp_path / "b.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tf:
        tf.add(source / "yes", arcname="yes")
    assert (dl.extract_archive(tar_path, tmp_path / "tar-out") / "yes" / "a_nohash_0.wav").read_bytes() == b"z"


def test_extract_rejects_traversal_and_garbage(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    evil.write_bytes(_zip_bytes({"../outside.txt": b"x"}))
    with pytest.raises(DataError, match="outside"):
        dl.extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="garbage.tar.gz"):
        dl.extract_archive(garbage, tmp_path / "out")


def test_download_esc50_end_to_end_with_a_fake_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fixture = make_esc50_fixture(tmp_path / "fixture", classes=((0, "dog"),))
    members = {f"ESC-50-master/{p.relative_to(fixture).as_posix()}": p.read_bytes()
               for p in fixture.rglob("*") if p.is_file()}
    members["ESC-50-master/README.md"] = b"readme"
    serve(monkeypatch, _zip_bytes(members))
    monkeypatch.setattr(dl, "ESC50_WAV_COUNT", 5)
    root = dl.download_esc50(tmp_path / "esc50", progress=False)
    assert len(ESC50Source(root).clips()) == 5
    assert not (root / "ESC-50-master.zip").exists() and not (root / ".extract").exists()
    monkeypatch.setattr(dl, "ESC50_WAV_COUNT", 6)
    with pytest.raises(DataError, match="found 5 wav files"):
        dl.download_esc50(tmp_path / "esc50-bis", progress=False)


def test_download_speechcommands_end_to_end_with_a_fake_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fixture = make_speechcommands_fixture(tmp_path / "fixture", ["yes", "no"], speakers=3, takes=1)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for path in sorted(fixture.iterdir()):
            tf.add(path, arcname=path.name)
    serve(monkeypatch, buffer.getvalue())
    monkeypatch.setattr(dl, "SPEECHCOMMANDS_WAV_COUNT", 6)  # background noise is not counted
    root = dl.download_speechcommands(tmp_path / "sc", progress=False)
    assert len(SpeechCommandsSource(root).clips()) == 6
    assert not (root / "speech_commands_v0.02.tar.gz").exists()
