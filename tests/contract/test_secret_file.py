"""A secret file is read only when no other user could have read, changed or replaced it.

Each test points ``$MINIRAY_SECRET_FILE`` at a file made unsafe in one way and expects
``load_secret`` to refuse it with a message that names the problem. The tests run as
root here, so "another user" is made with ``chown`` (uid 65534, nobody).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs("tcp")
SECRET = "a-perfectly-good-secret-0123456789"
OTHER_UID = 65534  # nobody


@pytest.fixture
def use_secret_file(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.delenv("MINIRAY_SECRET", raising=False)
    return lambda path: monkeypatch.setenv("MINIRAY_SECRET_FILE", str(path))


def safe_secret(folder: Path) -> Path:
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "secret"
    path.write_text(SECRET)
    path.chmod(0o600)
    return path


def refused(match: str) -> object:
    from miniray import AuthenticationError
    from miniray.secret import load_secret

    with pytest.raises(AuthenticationError, match=match) as caught:
        load_secret()
    return caught.value


def test_a_safe_secret_file_is_read(tmp_path: Path, use_secret_file: object) -> None:
    from miniray.secret import find_secret

    use_secret_file(safe_secret(tmp_path / "mine"))  # type: ignore[operator]
    assert find_secret() == SECRET.encode()


def test_a_symlink_is_refused_even_to_a_safe_file(tmp_path: Path, use_secret_file: object) -> None:
    link = tmp_path / "mine" / "link"
    target = safe_secret(tmp_path / "mine")
    link.symlink_to(target)
    use_secret_file(link)  # type: ignore[operator]
    refused("is a symbolic link")


def test_a_file_owned_by_another_user_is_refused(tmp_path: Path, use_secret_file: object) -> None:
    path = safe_secret(tmp_path / "mine")
    if os.geteuid() != 0:
        pytest.skip("making a file that belongs to another user needs root (chown)")
    os.chown(path, OTHER_UID, -1)
    use_secret_file(path)  # type: ignore[operator]
    refused(f"belongs to uid {OTHER_UID}, not to you")


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722])
def test_a_folder_others_can_write_is_refused(
    tmp_path: Path, use_secret_file: object, mode: int
) -> None:
    path = safe_secret(tmp_path / "shared")
    path.parent.chmod(mode)
    use_secret_file(path)  # type: ignore[operator]
    refused(rf"which other users can write \(mode {oct(mode)}\).*chmod go-w")


def test_a_sticky_folder_like_tmp_is_accepted(tmp_path: Path, use_secret_file: object) -> None:
    from miniray.secret import find_secret

    path = safe_secret(tmp_path / "sticky")
    path.parent.chmod(0o1777)  # others may add files, but not replace or remove ours
    use_secret_file(path)  # type: ignore[operator]
    assert find_secret() == SECRET.encode()


def test_a_folder_owned_by_another_user_is_refused(tmp_path: Path, use_secret_file: object) -> None:
    path = safe_secret(tmp_path / "theirs")
    if os.geteuid() != 0:
        pytest.skip("making a folder that belongs to another user needs root (chown)")
    os.chown(path.parent, OTHER_UID, -1)
    use_secret_file(path)  # type: ignore[operator]
    refused(f"belongs to uid {OTHER_UID}, who could replace the file")


def test_a_fifo_is_refused_without_waiting_for_a_writer(
    tmp_path: Path, use_secret_file: object
) -> None:
    (tmp_path / "mine").mkdir(mode=0o700)
    fifo = tmp_path / "mine" / "secret"
    os.mkfifo(fifo, 0o600)
    use_secret_file(fifo)  # type: ignore[operator]
    outcome: list[object] = []
    reader = threading.Thread(target=lambda: outcome.append(refused("not a regular file")))
    reader.start()
    reader.join(5)
    if reader.is_alive():  # opened the FIFO for reading and blocked: let it go, then fail
        with open(fifo, "w"):
            pass
        reader.join(5)
        pytest.fail("reading a FIFO as the secret file blocked until a writer came")
    assert len(outcome) == 1


def test_the_per_user_file_is_not_followed_when_it_is_a_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray.secret import default_secret_path

    for name in ("MINIRAY_SECRET", "MINIRAY_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    elsewhere = safe_secret(tmp_path / "elsewhere")
    default_secret_path().parent.mkdir(parents=True, mode=0o700)
    default_secret_path().symlink_to(elsewhere)
    refused("is a symbolic link")
    (tmp_path / "config" / "miniray" / "secret").unlink()
    default_secret_path().symlink_to(tmp_path / "nothing")  # a link to where we would write
    refused("is a symbolic link")
    assert not (tmp_path / "nothing").exists()
