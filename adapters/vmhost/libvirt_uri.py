"""Which libvirt URIs a host row may name: a row's URI is admin input that libvirt acts on."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from ports.vmhost import VmHostError

#: hypervisor drivers and transports a host may use (no `ext`: it runs a local command)
SCHEMES = frozenset(
    {
        "qemu",
        "qemu+ssh",
        "qemu+libssh",
        "qemu+libssh2",
        "qemu+tls",
        "qemu+tcp",
        "qemu+unix",
        "test",
    }
)
#: URI parameters allowed; `command`, `netcat`, `socket` and `proxy` are refused because they
#: make libvirt run a program or open a socket of the caller's choice
PARAMS = frozenset(
    {
        "keyfile",
        "known_hosts",
        "known_hosts_verify",
        "no_verify",
        "no_tty",
        "pkipath",
        "sshauth",
        "mode",
        "tls",
        "tls_priority",
        "name",
    }
)
TEST_DEFAULT = "test:///default"


def check_libvirt_uri(uri: str, *, allow_test_files: bool = False) -> None:
    """Refuse a URI that would let a host row run commands or read files on this server.

    libvirt's test driver reads any file named in the URI and quotes it in its errors, so
    only `test:///default` is allowed unless `allow_test_files` (tests with a node file).
    """
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise VmHostError(f"libvirt URI is not valid: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        allowed = ", ".join(sorted(SCHEMES))
        raise VmHostError(f"libvirt URI scheme must be one of: {allowed}")
    if scheme == "test" and uri != TEST_DEFAULT and not allow_test_files:
        raise VmHostError(f"the libvirt test driver is only allowed as {TEST_DEFAULT}")
    try:
        names = {
            k.lower()
            for k, _ in parse_qsl(
                parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)
            )
        }
    except ValueError:
        raise VmHostError("libvirt URI has a malformed query") from None
    refused = sorted(names - PARAMS)
    if refused:
        raise VmHostError(f"libvirt URI parameter not allowed: {', '.join(refused)}")
