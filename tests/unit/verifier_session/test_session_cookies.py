"""Which cookies go to oauth2-proxy, what a session is bound to, which Set-Cookie comes back."""

from __future__ import annotations

import base64

import pytest

from verifier.core.session_cookies import (
    MAX_COOKIE_CHUNKS,
    cookie_name_of,
    parse_cookie_header,
    pick_session_set_cookie,
    session_binding,
    session_cookie_value,
    session_cookies,
    session_ticket_id,
)
from verifier.sources.session.settings import SessionSettings

from .oauth2_proxy_cookie import Ticket

NAME = "__Host-oauth2_proxy"
SECRET = "0123456789abcdef0123456789abcdef"


def test_cookie_header_is_parsed_into_ordered_pairs_across_headers() -> None:
    assert parse_cookie_header(["a=1; b=2", "c=3;d=4 ;  e = 5"]) == [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d", "4"),
        ("e", "5"),
    ]


def test_cookie_parser_skips_malformed_pairs_but_keeps_the_rest() -> None:
    header = 'flag; =novalue; ok=1; bad name=2; quoted="q|1"; ctl=a\x01b; uni=\u00e9; last=x=y'
    assert parse_cookie_header([header]) == [("ok", "1"), ("quoted", "q|1"), ("last", "x=y")]


def test_only_the_session_cookie_is_selected_from_a_crowded_header() -> None:
    header = f"theme=dark; {NAME}_csrf=abc; {NAME}=sess|1|sig; other_{NAME}=no; {NAME}x=no"
    assert session_cookies([header], NAME) == ((NAME, "sess|1|sig"),)


def test_no_session_cookie_selects_nothing() -> None:
    assert session_cookies(["theme=dark; lang=en"], NAME) == ()
    assert session_cookies([], NAME) == ()
    assert session_cookies([f"{NAME}="], NAME) == ()


def test_first_session_cookie_wins_like_oauth2_proxy_reads_it() -> None:
    assert session_cookies([f"{NAME}=first; {NAME}=second", f"{NAME}=third"], NAME) == ((NAME, "first"),)


def test_split_cookie_chunks_are_selected_in_order_and_stop_at_a_gap() -> None:
    header = f"{NAME}_1=b; {NAME}_0=a; {NAME}_3=d; x=1; {NAME}_2=c; {NAME}_5=f"
    assert session_cookies([header], NAME) == (
        (f"{NAME}_0", "a"),
        (f"{NAME}_1", "b"),
        (f"{NAME}_2", "c"),
        (f"{NAME}_3", "d"),
    )


def test_chunks_beyond_the_limit_are_not_forwarded() -> None:
    header = "; ".join(f"{NAME}_{i}=v{i}" for i in range(MAX_COOKIE_CHUNKS + 5))
    assert len(session_cookies([header], NAME)) == MAX_COOKIE_CHUNKS


def test_session_value_is_the_whole_cookie_or_the_joined_chunks() -> None:
    assert session_cookie_value(((NAME, "whole"),), NAME) == "whole"
    assert session_cookie_value(((f"{NAME}_0", "ab"), (f"{NAME}_1", "cd")), NAME) == "abcd"


def test_binding_survives_oauth2_proxy_re_signing_the_same_ticket_on_refresh() -> None:
    ticket = Ticket.new(NAME)
    before = ticket.cookie_value(SECRET, 1_800_000_000)
    after = ticket.cookie_value(SECRET, 1_800_000_900)
    assert before != after
    assert session_binding(before) == session_binding(after)


def test_binding_changes_with_a_new_sign_in() -> None:
    first = Ticket.new(NAME).cookie_value(SECRET, 1_800_000_000)
    second = Ticket.new(NAME).cookie_value(SECRET, 1_800_000_000)
    assert session_binding(first) != session_binding(second)


def test_binding_is_a_32_byte_digest_that_reveals_no_part_of_the_ticket() -> None:
    ticket = Ticket.new(NAME)
    binding = session_binding(ticket.cookie_value(SECRET, 1_800_000_000))
    assert len(binding) == 32
    assert ticket.secret not in binding and ticket.secret.hex() not in binding.hex()


def test_binding_of_a_value_without_ticket_shape_covers_the_whole_value() -> None:
    assert session_binding("opaque-a") != session_binding("opaque-b")
    assert session_binding("a|b") != session_binding("a|c")
    assert session_binding("|1|sig") != session_binding("|2|sig")


def test_session_set_cookie_is_picked_among_others_and_the_last_one_wins() -> None:
    values = [
        f"{NAME}_csrf=x; Path=/",
        f"{NAME}=old|1|s; Path=/; Secure",
        "theme=dark",
        f"{NAME}=new|2|s; Path=/; Max-Age=3600; HttpOnly; Secure",
    ]
    assert pick_session_set_cookie(values, NAME) == values[-1]


def test_clearing_set_cookie_is_picked_like_any_other() -> None:
    clearing = f"{NAME}=; Path=/; Max-Age=0; HttpOnly; Secure"
    assert pick_session_set_cookie([clearing], NAME) == clearing


def test_no_session_set_cookie_gives_none_and_header_injection_is_dropped() -> None:
    assert pick_session_set_cookie([], NAME) is None
    assert pick_session_set_cookie(["theme=dark"], NAME) is None
    assert pick_session_set_cookie([f"{NAME}=a\r\nX-Evil: 1"], NAME) is None


def test_cookie_name_of_reads_the_name_before_the_first_equals_sign() -> None:
    assert cookie_name_of(f"{NAME}=a=b; Path=/") == NAME
    assert cookie_name_of(" spaced =1") == "spaced"


def test_session_settings_build_the_auth_url_and_refuse_bad_values() -> None:
    assert (
        SessionSettings(oauth2_proxy_url="http://127.0.0.1:4180/").auth_url
        == "http://127.0.0.1:4180/oauth2/auth"
    )
    with pytest.raises(ValueError, match="http"):
        SessionSettings(oauth2_proxy_url="127.0.0.1:4180")
    with pytest.raises(ValueError, match="cookie name"):
        SessionSettings(cookie_name="bad;name")
    with pytest.raises(ValueError, match="positive"):
        SessionSettings(timeout_seconds=0)


def _ticket_cookie(ticket: str) -> str:
    payload = base64.urlsafe_b64encode(ticket.encode()).decode()
    return f"{payload}|1800000000|c2ln"


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_the_ticket_id_of_an_oauth2_proxy_cookie_is_read_without_its_secret() -> None:
    ticket_id = "__Host-oauth2_proxy-" + "0123456789abcdef" * 2
    cookie = _ticket_cookie(f"v2.{_raw(ticket_id)}.{_raw('secret-bytes-16!')}")
    assert session_ticket_id(cookie, "__Host-oauth2_proxy") == ticket_id


@pytest.mark.parametrize(
    "ticket",
    [
        "v2." + _raw("__Host-oauth2_proxy-*") + ".c2Vj",  # a pattern, not an id
        "v2." + _raw("other-0123456789abcdef0123456789abcdef") + ".c2Vj",  # another prefix
        "v2." + _raw("__Host-oauth2_proxy-0123456789ABCDEF0123456789ABCDEF") + ".c2Vj",
        "v2." + _raw("__Host-oauth2_proxy-0123456789abcdef0123456789abcdef\r\nDEL x") + ".c2Vj",
        "v1." + _raw("__Host-oauth2_proxy-0123456789abcdef0123456789abcdef") + ".c2Vj",
        "v2.%%%.c2Vj",
        "v2.only-two",
    ],
)
def test_anything_but_an_oauth2_proxy_ticket_id_is_no_ticket(ticket: str) -> None:
    assert session_ticket_id(_ticket_cookie(ticket), "__Host-oauth2_proxy") is None


@pytest.mark.parametrize("value", ["", "a|b", "not base64!|1|c2ln", "x" * 600 + "|1|c2ln", "\u00e9|1|c2ln"])
def test_malformed_cookie_values_are_no_ticket(value: str) -> None:
    assert session_ticket_id(value, "__Host-oauth2_proxy") is None
