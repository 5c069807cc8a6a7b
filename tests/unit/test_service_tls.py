"""TLS on the verifier's and the API's own listeners (service_runtime.tls): off unless configured,
every misconfiguration named at start-up, and with a client CA only clients holding a certificate it
issued get an answer."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from aiohttp import ClientError, ClientSession, TCPConnector, web

from fastapi_app.__main__ import _tls_options
from fastapi_app.settings import ApiSettings
from service_runtime.config_error import ConfigError
from service_runtime.env import EnvReader
from service_runtime.tls import ServerTls, server_tls_from_env
from stack.pki import TlsFiles, make_dev_pki
from verifier.service.settings import settings_from_env


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_dev_pki(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_dev_pki(tmp_path_factory.mktemp("other-tls"))


def _read(env: dict[str, str]) -> tuple[ServerTls | None, list[str]]:
    reader = EnvReader(env)
    return server_tls_from_env(reader, "X"), reader.problems


def test_tls_is_off_unless_configured() -> None:
    assert _read({}) == (None, [])


def test_certificate_and_key_turn_it_on_and_a_client_ca_requires_client_certificates(pki: TlsFiles) -> None:
    tls, problems = _read({"X_TLS_CERT_FILE": str(pki.cert), "X_TLS_KEY_FILE": str(pki.key)})
    assert (tls, problems) == (ServerTls(pki.cert, pki.key), [])
    assert tls is not None and tls.context().verify_mode == ssl.CERT_NONE
    env = {
        "X_TLS_CERT_FILE": str(pki.cert),
        "X_TLS_KEY_FILE": str(pki.key),
        "X_TLS_CLIENT_CA_FILE": str(pki.ca_cert),
    }
    mutual, problems = _read(env)
    assert problems == [] and mutual is not None
    assert mutual.context().verify_mode == ssl.CERT_REQUIRED
    assert mutual.context().minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    ("names", "says"),
    [
        (("X_TLS_CERT_FILE",), "set both X_TLS_CERT_FILE and X_TLS_KEY_FILE"),
        (("X_TLS_KEY_FILE",), "set both X_TLS_CERT_FILE and X_TLS_KEY_FILE"),
        (("X_TLS_CLIENT_CA_FILE",), "X_TLS_CLIENT_CA_FILE needs X_TLS_CERT_FILE"),
    ],
)
def test_half_a_configuration_is_a_problem(pki: TlsFiles, names: tuple[str, ...], says: str) -> None:
    files = {"X_TLS_CERT_FILE": pki.cert, "X_TLS_KEY_FILE": pki.key, "X_TLS_CLIENT_CA_FILE": pki.ca_cert}
    tls, problems = _read({name: str(files[name]) for name in names})
    assert tls is None
    assert len(problems) == 1 and says in problems[0], problems


def test_a_key_that_is_not_the_certificates_is_a_problem_that_names_no_content(
    pki: TlsFiles, other_pki: TlsFiles
) -> None:
    _, problems = _read({"X_TLS_CERT_FILE": str(pki.cert), "X_TLS_KEY_FILE": str(other_pki.key)})
    assert len(problems) == 1 and "cannot be loaded (SSLError)" in problems[0], problems
    assert "PRIVATE KEY" not in problems[0]


def test_a_missing_file_is_a_problem(tmp_path: Path, pki: TlsFiles) -> None:
    _, problems = _read({"X_TLS_CERT_FILE": str(tmp_path / "nope.pem"), "X_TLS_KEY_FILE": str(pki.key)})
    assert any("no such file" in p for p in problems), problems


def test_the_verifier_and_the_api_read_their_own_prefix(pki: TlsFiles) -> None:
    with pytest.raises(ConfigError, match="VERIFIER_TLS_CERT_FILE and VERIFIER_TLS_KEY_FILE"):
        settings_from_env({"VERIFIER_TLS_CERT_FILE": str(pki.cert)})
    api = ApiSettings.from_env(
        {
            "IDENTITY_SIGNING_KEY": "a-raw-text-identity-signing-key-with-enough-bytes",
            "API_AUTHORITY_URL": "https://login.microsoftonline.com/7f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
            "API_OPENAPI_CLIENT_ID": "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f",
            "API_SCOPE_PREFIX": "api://5a1e9c3d-8b7f-4e21-9d63-2f4a8b1c0e57",
            "API_TLS_CERT_FILE": str(pki.cert),
            "API_TLS_KEY_FILE": str(pki.key),
            "API_TLS_CLIENT_CA_FILE": str(pki.ca_cert),
        }
    )
    assert api.tls == ServerTls(pki.cert, pki.key, pki.ca_cert)
    assert _tls_options(api) == {
        "ssl_certfile": pki.cert,
        "ssl_keyfile": pki.key,
        "ssl_ca_certs": str(pki.ca_cert),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }


async def test_with_a_client_ca_only_a_client_with_its_certificate_gets_an_answer(
    pki: TlsFiles, other_pki: TlsFiles
) -> None:
    app = web.Application()

    async def ready(_: web.Request) -> web.Response:
        return web.Response(text="ready")

    app.router.add_get("/readyz", ready)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(
        runner, "127.0.0.1", 0, ssl_context=ServerTls(pki.cert, pki.key, pki.ca_cert).context()
    )
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def status(client_files: TlsFiles | None) -> int | str:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        if client_files is not None:
            context.load_cert_chain(client_files.cert, client_files.key)
        try:
            async with (
                ClientSession(connector=TCPConnector(ssl=context)) as http,
                http.get(f"https://localhost:{port}/readyz") as response,
            ):
                return response.status
        except (ClientError, ssl.SSLError, OSError) as exc:
            return type(exc).__name__

    try:
        assert await status(pki) == 200
        assert await status(None) != 200
        assert await status(other_pki) != 200
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)
