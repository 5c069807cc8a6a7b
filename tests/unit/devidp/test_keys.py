"""Signing keys: kept across restarts when a key file is configured; rotation keeps the previous key."""

from __future__ import annotations

from pathlib import Path

from devidp.keys import KeyRing, load_or_create_signing_key


def test_key_file_is_created_private_and_reloaded_with_same_kid(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.pem"
    first = load_or_create_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_or_create_signing_key(path)
    assert again.kid == first.kid and again.x5t == first.x5t


def test_rotation_keeps_exactly_one_previous_key(shared_key, upcoming_key) -> None:
    ring = KeyRing(shared_key, upcoming=upcoming_key)
    second = ring.rotate()
    third = ring.rotate()
    assert second is upcoming_key
    assert [k.kid for k in ring.published] == [ring.upcoming.kid, third.kid, second.kid]
    assert ring.find(shared_key.kid) is None and ring.find(second.kid) is second
