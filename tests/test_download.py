"""Downloads without a network: offline errors, Range resume and archive extraction with a fake ``urlopen``."""
from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from fixtures import make_esc50_fixture, make_speechcommands_fixture, make_urbansound8k_fixture

from audio_ticl.benchmark import cli
from audio_ticl.benchmark.datasets import ESC50Source, SpeechCommandsSource, UrbanSound8KSource
from audio_ticl.benchmark.datasets import download as dl
from audio_ticl.benchmark.errors import DataError


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


@pytest.fixture(autouse=True)
def no_official_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake archives are not the official ones: tests that check digests set the one they serve."""
    monkeypatch.setattr(dl, "SPEECHCOMMANDS_SHA256", None)
    monkeypatch.setattr(dl, "URBANSOUND8K_MD5", None)


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


def test_download_speechcommands_end_to_end_with_a_fake_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
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


# -- UrbanSound8K ---------------------------------------------------------------------------------------------------

US8K_CLASSES = ((0, "air_conditioner"), (3, "dog_bark"))
US8K_WAVS = 20  # 2 classes x 10 folds


def _us8k_archive(tmp_path: Path) -> bytes:
    """A .tar.gz in the official archive's layout: everything under a top ``UrbanSound8K/`` folder."""
    fixture = make_urbansound8k_fixture(tmp_path / "us8k-src" / "UrbanSound8K", classes=US8K_CLASSES)
    (fixture / "UrbanSound8K_README.txt").write_text("readme")
    (fixture / "FREESOUNDCREDITS.txt").write_text("credits")
    (fixture / "audio" / "fold1" / ".DS_Store").write_bytes(b"\0")  # a stray non-wav file is not counted
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.add(fixture, arcname="UrbanSound8K")
    return buffer.getvalue()


def _us8k_layout_ok(root: Path) -> None:
    assert (root / "metadata" / "UrbanSound8K.csv").is_file() and (root / "audio" / "fold10").is_dir()
    assert (root / "FREESOUNDCREDITS.txt").read_text() == "credits"
    assert not (root / "UrbanSound8K").exists() and not (root / ".extract").exists()
    source = UrbanSound8KSource(root)
    assert source.classes() == ["air_conditioner", "dog_bark"] and len(source.clips()) == US8K_WAVS


def test_offline_urbansound8k_says_where_to_put_the_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    offline(monkeypatch)
    with pytest.raises(DataError) as err:
        dl.download_urbansound8k(tmp_path / "us8k", progress=False)
    message = str(err.value)
    assert f"could not reach {dl.URBANSOUND8K_URL}" in message and "by hand" in message
    assert "zenodo.org/records/1203745" in message
    assert str(tmp_path / "us8k" / "metadata" / "UrbanSound8K.csv") in message
    assert str(tmp_path / "us8k" / "audio" / "fold1") in message


def test_download_urbansound8k_end_to_end_with_a_fake_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    payload = _us8k_archive(tmp_path)
    requests = serve(monkeypatch, payload)
    monkeypatch.setattr(dl, "URBANSOUND8K_WAV_COUNT", US8K_WAVS)
    monkeypatch.setattr(dl, "URBANSOUND8K_MD5", hashlib.md5(payload).hexdigest())  # checked, and it matches
    root = dl.download_urbansound8k(tmp_path / "us8k", progress=False)
    assert root == tmp_path / "us8k" and requests[0].full_url == dl.URBANSOUND8K_URL
    _us8k_layout_ok(root)
    assert not (root / "UrbanSound8K.tar.gz").exists()
    # complete: a second call touches nothing
    assert dl.download_urbansound8k(root, progress=False) == root and len(requests) == 1


def test_download_urbansound8k_resumes_a_partial_archive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    payload = _us8k_archive(tmp_path)
    root = tmp_path / "us8k"
    root.mkdir()
    (root / "UrbanSound8K.tar.gz.part").write_bytes(payload[: len(payload) // 2])
    requests = serve(monkeypatch, payload)
    monkeypatch.setattr(dl, "URBANSOUND8K_WAV_COUNT", US8K_WAVS)
    dl.download_urbansound8k(root, progress=False, keep_archive=True)
    assert requests[0].get_header("Range") == f"bytes={len(payload) // 2}-"
    assert (root / "UrbanSound8K.tar.gz").read_bytes() == payload and not (root / "UrbanSound8K.tar.gz.part").exists()
    _us8k_layout_ok(root)


def test_urbansound8k_already_extracted_by_hand_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    offline(monkeypatch)  # nothing may be fetched
    make_urbansound8k_fixture(tmp_path / "UrbanSound8K", classes=US8K_CLASSES)
    monkeypatch.setattr(dl, "URBANSOUND8K_WAV_COUNT", US8K_WAVS)
    assert dl.download_urbansound8k(tmp_path, progress=False) == tmp_path / "UrbanSound8K"


def test_download_urbansound8k_verification_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    serve(monkeypatch, _us8k_archive(tmp_path))
    monkeypatch.setattr(dl, "URBANSOUND8K_WAV_COUNT", US8K_WAVS + 1)
    with pytest.raises(DataError, match=f"found {US8K_WAVS} wav files .* and {US8K_WAVS} rows .*expected "
                                        f"{US8K_WAVS + 1} of each.*delete it and run again"):
        dl.download_urbansound8k(tmp_path / "short", progress=False)
    # an archive without the metadata csv is not UrbanSound8K: it is deleted so that the next run fetches afresh
    serve(monkeypatch, _zip_bytes({"UrbanSound8K/audio/fold1/a.wav": b"x"}))
    with pytest.raises(DataError, match="expected metadata/UrbanSound8K.csv and the folders metadata/, audio/ inside"):
        dl.download_urbansound8k(tmp_path / "wrong", progress=False)
    assert not (tmp_path / "wrong" / "UrbanSound8K.tar.gz").exists()
    serve(monkeypatch, _zip_bytes({"UrbanSound8K/metadata/UrbanSound8K.csv": b"slice_file_name\n"}))
    with pytest.raises(DataError, match="not the official archive"):
        dl.download_urbansound8k(tmp_path / "no-audio", progress=False)
    # a damaged archive is deleted too
    serve(monkeypatch, b"\x1f\x8b" + b"\0" * 64)
    with pytest.raises(DataError, match="delete it and download again|not a zip or tar"):
        dl.download_urbansound8k(tmp_path / "damaged", progress=False)
    assert not (tmp_path / "damaged" / "UrbanSound8K.tar.gz").exists()


def test_checksum_mismatch_deletes_the_archive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    payload = _us8k_archive(tmp_path)
    serve(monkeypatch, payload)
    monkeypatch.setattr(dl, "URBANSOUND8K_WAV_COUNT", US8K_WAVS)
    monkeypatch.setattr(dl, "URBANSOUND8K_MD5", "0" * 32)
    root = tmp_path / "us8k"
    with pytest.raises(DataError, match=f"UrbanSound8K.tar.gz: md5 {hashlib.md5(payload).hexdigest()} is not the "
                                        "official archive's .*deleted it"):
        dl.download_urbansound8k(root, progress=False, keep_archive=True)
    assert not (root / "UrbanSound8K.tar.gz").exists() and not (root / "audio").exists()
    # the same for Speech Commands' sha256, also on an archive left from an earlier run
    monkeypatch.setattr(dl, "SPEECHCOMMANDS_SHA256", "f" * 64)
    (tmp_path / "sc").mkdir()
    (tmp_path / "sc" / "speech_commands_v0.02.tar.gz").write_bytes(b"left over")
    with pytest.raises(DataError, match="sha256 .* is not the official archive's"):
        dl.download_speechcommands(tmp_path / "sc", progress=False)
    assert not (tmp_path / "sc" / "speech_commands_v0.02.tar.gz").exists()


def test_official_checksums_are_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the official values, not the autouse fixture's
    assert dl.dataset_checksum("esc50") is None  # GitHub's master.zip changes with every commit
    sc_sha256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"  # torchaudio's
    assert dl.dataset_checksum("speechcommands") == ("sha256", sc_sha256)
    assert dl.dataset_checksum("urbansound8k") == ("md5", "9aa69802bbf37fb986f71ec1483a196e")


def test_download_progress_flag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    serve(monkeypatch, b"x" * 5000)
    dl.download_file("http://example/a.bin", tmp_path / "a.bin", progress=False)
    assert capsys.readouterr() == ("", "")
    dl.download_file("http://example/b.bin", tmp_path / "b.bin", progress=True)
    assert "b.bin" in capsys.readouterr().err


# -- `ticl datasets` ------------------------------------------------------------------------------------------------

def test_cli_datasets_list(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("esc50", "speechcommands", "urbansound8k"):
        assert name in out and dl.dataset_url(name) in out
    assert "ROOT/metadata/UrbanSound8K.csv, ROOT/audio/fold1..fold10/*.wav (8732 clips)" in out
    assert cli.DOWNLOADABLE == tuple(dl.DOWNLOADS)


def test_cli_download_from_file_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    """The real ``urlopen`` on ``file://`` URLs: no network, but the whole download path."""
    us8k = tmp_path / "mirror" / "UrbanSound8K.tar.gz"
    us8k.parent.mkdir()
    us8k.write_bytes(_us8k_archive(tmp_path))
    monkeypatch.setattr(dl, "URBANSOUND8K_URL", us8k.as_uri())
    monkeypatch.setattr(dl, "URBANSOUND8K_WAV_COUNT", US8K_WAVS)
    root = tmp_path / "data" / "us8k"
    assert cli.main(["datasets", "download", "urbansound8k", "--root", str(root), "--no-progress"]) == 0
    assert f"urbansound8k: ready and verified in {root}" in capsys.readouterr().out
    _us8k_layout_ok(root)

    fixture = make_esc50_fixture(tmp_path / "esc-src", classes=((0, "dog"),))
    esc = tmp_path / "mirror" / "master.zip"
    esc.write_bytes(_zip_bytes({f"ESC-50-master/{p.relative_to(fixture).as_posix()}": p.read_bytes()
                                for p in fixture.rglob("*") if p.is_file()}))
    monkeypatch.setattr(dl, "ESC50_URL", esc.as_uri())
    monkeypatch.setattr(dl, "ESC50_WAV_COUNT", 5)
    args = ["datasets", "download", "esc50", "--root", str(tmp_path / "esc"), "--no-progress", "--keep-archive"]
    assert cli.main(args) == 0
    assert len(ESC50Source(tmp_path / "esc").clips()) == 5 and (tmp_path / "esc" / "ESC-50-master.zip").is_file()


def test_cli_download_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    offline(monkeypatch)
    root = tmp_path / "us8k"
    assert cli.main(["datasets", "download", "urbansound8k", "--root", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ticl: error: could not reach https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz")
    assert "by hand" in err and str(root / "metadata" / "UrbanSound8K.csv") in err
    with pytest.raises(SystemExit):
        cli.main(["datasets", "download", "audioset", "--root", str(root)])
