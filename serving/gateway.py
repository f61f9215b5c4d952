"""The inference gateway: nginx with TLS in front of TF Serving, passing only the inference surface.

TF Serving has no authentication, and its ModelService also answers `HandleReloadConfigRequest`, which
can unload every model or load a SavedModel from any path the server reads. The gateway passes only
`PredictionService/Predict`, `PredictionService/GetModelMetadata` and `ModelService/GetModelStatus`
over gRPC, and `GET /v1/models/...` and `POST .../:predict` over REST; anything else gets 403 (a gRPC
client reads PERMISSION_DENIED). With a token, a request without `Authorization: Bearer <token>` gets
401 (UNAUTHENTICATED). The reconciler reaches TF Serving directly, on the inside.

`python -m serving.gateway certificate DIR [HOST ...]` writes the gateway's certificate, signed by a
local CA that clients trust (`ca.crt`; compose's init job does; replace them with your CA's).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import ipaddress
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mura_core.settings import SERVING_GRPC_PORT, SERVING_REST_PORT

GRPC_METHODS = (
    "/tensorflow.serving.PredictionService/Predict",
    "/tensorflow.serving.PredictionService/GetModelMetadata",
    "/tensorflow.serving.ModelService/GetModelStatus",
)
# REST: a model, optionally a version or label, then nothing (status), /metadata (GET) or :predict (POST).
REST_MODEL_PATH = r"^/v1/models/[A-Za-z0-9_.-]+(/versions/[0-9]+|/labels/[A-Za-z0-9_-]+)?"
GRPC_UPSTREAM, REST_UPSTREAM = "mura_serving_grpc", "mura_serving_rest"
CONNECT_TIMEOUT = "5s"  # a replica that does not accept within this is skipped for the next one
# Bodies past this are spooled to the gateway's temp folder: 256 connections (worker_connections) of
# in-memory buffers then hold at most 256 MiB, where 64 MiB buffers could hold 16 GiB (SECURITY.md).
BODY_BUFFER = "1m"
# A dot segment, or an encoded dot, slash or backslash, anywhere in the path as sent: nginx matches
# locations on the normalised path but passes the request line as sent, so `/x/../v1/models/m` would
# match an allowed location and reach TF Serving as `/x/../...`. Refused before any location.
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
UNNORMAL_PATH = r"^[^?]*(/\.\.?(/|\?|$)|%2[eEfF]|%5[cC]|\x5c)"
# nginx answers an HTTP/0.9 request line (`GET /path`, no version) with a bare body: no status, no
# headers, nothing a client or a log can check. Such a connection is closed unanswered (444).
OLD_PROTOCOL = '    if ($server_protocol !~ "^HTTP/[12]\\.") {\n        return 444;\n    }\n'


@dataclass(frozen=True)
class GatewayOptions:
    """Where the gateway listens, what it forwards to, its certificate and optional token."""

    grpc_listen: str  # host:port of TLS gRPC
    rest_listen: str  # host:port of TLS REST
    upstream_grpc: tuple[str, ...]  # every TF Serving replica's gRPC host:port (internal)
    upstream_rest: tuple[str, ...]  # and REST host:port, in the same order
    certificate: str
    key: str
    token: str | None = None


def _upstream(name: str, servers: tuple[str, ...]) -> str:
    # max_fails=0: never mark a replica down. nginx's marking outlives a restart by up to its
    # fail_timeout, so a kill of the other replica in that window found "no live upstreams" (502)
    # although one was up; a dead replica costs a refused connect (or CONNECT_TIMEOUT), then the next.
    lines = "".join(f"    server {server} max_fails=0;\n" for server in servers)
    return f"upstream {name} {{\n{lines}}}\n"


def _token_check(token: str | None) -> str:
    if not token:
        return ""
    return "        if ($mura_token_ok = 0) { return 401; }\n"


def max_body_size() -> str:
    """nginx's client_max_body_size: params.yaml serving.max_request_bytes, what the server accepts."""
    from mura_core.config import load_config

    return f"{load_config().serving.max_request_bytes}"


def answer_timeout() -> str:
    """How long nginx waits for a replica's answer: params.yaml serving.gateway_answer_seconds."""
    from mura_core.config import load_config

    return f"{load_config().serving.gateway_answer_seconds:g}s"


def http_block(options: GatewayOptions) -> str:
    """The http-level configuration: the two TLS servers and their allow-lists."""
    token_map = (
        f'map $http_authorization $mura_token_ok {{\n    default 0;\n    "Bearer {options.token}" 1;\n}}\n'
        if options.token
        else ""
    )
    check = _token_check(options.token)
    max_body, answer = max_body_size(), answer_timeout()
    upstreams = _upstream(GRPC_UPSTREAM, options.upstream_grpc) + _upstream(
        REST_UPSTREAM, options.upstream_rest
    )
    return (
        token_map
        + upstreams
        + _grpc_server(options, check, max_body, answer)
        + _rest_server(options, check, max_body, answer)
    )


def _grpc_server(options: GatewayOptions, check: str, max_body: str, answer: str) -> str:
    """The TLS gRPC server: the allowed methods to the replicas, anything else PERMISSION_DENIED."""
    grpc_locations = "".join(
        f"    location = {method} {{\n{check}        grpc_pass grpc://{GRPC_UPSTREAM};\n    }}\n"
        for method in GRPC_METHODS
    )
    return f"""server {{
    listen {options.grpc_listen} ssl http2;
    ssl_certificate {options.certificate};
    ssl_certificate_key {options.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    server_tokens off;
    client_max_body_size {max_body};
    client_body_buffer_size {BODY_BUFFER};
    # A call a replica refused (dead, restarting) or left unanswered (hung: alive, not answering)
    # goes to the other, once: Predict is a pure function, and a request that kills a replica gets
    # one more replica at most, never all of them.
    grpc_read_timeout {answer};
    grpc_send_timeout {answer};
    grpc_next_upstream error timeout non_idempotent;
    grpc_connect_timeout {CONNECT_TIMEOUT};
    grpc_next_upstream_tries 2;
{OLD_PROTOCOL}{grpc_locations}    # Everything else, ModelService/HandleReloadConfigRequest included: PERMISSION_DENIED.
    location / {{
        return 403;
    }}
}}
"""


def _rest_server(options: GatewayOptions, check: str, max_body: str, answer: str) -> str:
    """The TLS REST server: model status and metadata (GET) and predict (POST), anything else 403."""
    return f"""server {{
    listen {options.rest_listen} ssl;
    ssl_certificate {options.certificate};
    ssl_certificate_key {options.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    server_tokens off;
    client_max_body_size {max_body};
    client_body_buffer_size {BODY_BUFFER};
    proxy_read_timeout {answer};
    proxy_send_timeout {answer};
    proxy_next_upstream error timeout non_idempotent;
    proxy_connect_timeout {CONNECT_TIMEOUT};
    proxy_next_upstream_tries 2;
{OLD_PROTOCOL}    if ($request_uri ~ "{UNNORMAL_PATH}") {{
        return 400;
    }}
    location ~ "{REST_MODEL_PATH}(/metadata)?$" {{
{check}        limit_except GET {{ deny all; }}
        proxy_pass http://{REST_UPSTREAM};
    }}
    location ~ "{REST_MODEL_PATH}:predict$" {{
{check}        limit_except POST {{ deny all; }}
        proxy_pass http://{REST_UPSTREAM};
    }}
    location / {{
        return 403;
    }}
}}
"""


GATEWAY_USER = "mura-gateway"  # the workers' own system user: no other process runs as it


def _unprivileged_user() -> tuple[str, str] | None:
    """(user, group) nginx's workers switch to when it runs as root: a system user of the gateway's own
    (made once, no home, no shell), so a flaw in request handling runs neither as root nor as the
    shared `nobody`, whose other processes could read the workers' memory and the TLS key in it. None
    when not root (the workers keep the invoking user)."""
    if os.geteuid() != 0:
        return None
    import grp
    import pwd

    try:
        found = pwd.getpwnam(GATEWAY_USER)
    except KeyError:
        found = _add_system_user(GATEWAY_USER)
    return found.pw_name, grp.getgrgid(found.pw_gid).gr_name


def _add_system_user(name: str):
    """Create the system user `name` with a group of its own (useradd), and return its passwd entry."""
    import pwd
    import shutil
    import subprocess

    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    made = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(
            f"the gateway's workers need a system user {name} of their own and `useradd` could not make it "
            f"({(made.stderr or '').strip() or 'exit ' + str(made.returncode)}): create it "
            f"(useradd --system --user-group {name}), or run the stack as an unprivileged user"
        ) from None


def _temp_root(prefix: Path) -> Path:
    """Where the workers spool bodies: under the prefix, or, when they drop root, a folder of root's
    outside MURA_HOME (0700, so the workers' user could not reach into it) that nginx fills with folders of the
    workers' own (it creates and chowns temp paths at start)."""
    if _unprivileged_user() is None:
        return prefix / "temp"
    digest = hashlib.sha256(str(prefix.resolve()).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"mura-gateway-{digest}"
    try:
        folder.mkdir(mode=0o711)
    except FileExistsError:
        found = folder.lstat()
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != 0 or stat.S_IMODE(found.st_mode) & 0o022:
            raise RuntimeError(
                f"{folder} exists but is not a folder of root's that only root writes: remove it, then start "
                "the gateway again"
            ) from None
    folder.chmod(0o711)
    return folder


def standalone_config(options: GatewayOptions, prefix: Path) -> str:
    """A whole nginx.conf for a gateway run by the embedded stack from `prefix` (pid, temp files, logs)."""
    dropped = _unprivileged_user()
    user = f"user {dropped[0]} {dropped[1]};\n" if dropped else ""
    temp = _temp_root(prefix)
    temp_paths = "".join(f"    {kind}_temp_path {temp / kind};\n" for kind in TEMP_KINDS)
    body = "".join(f"    {line}\n" if line else "\n" for line in http_block(options).splitlines())
    return (
        f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
        "events {\n    worker_connections 256;\n}\n"
        f"http {{\n    access_log {prefix / 'access.log'};\n{temp_paths}{body}}}\n"
    )


def write_standalone(options: GatewayOptions, prefix: Path) -> Path:
    """Write the embedded gateway's nginx.conf under `prefix` (nginx makes its temp folders at start)."""
    prefix.mkdir(parents=True, exist_ok=True)
    path = prefix / "nginx.conf"
    path.write_text(standalone_config(options, prefix), encoding="utf-8")
    return path


def command(nginx: str, config: Path, prefix: Path) -> list[str]:
    """nginx in the foreground on `config` (start-up errors to the prefix's log, not /var/log)."""
    return [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config), "-g", "daemon off;"]


class GatewayCertificate(NamedTuple):
    """The gateway's files: its certificate and key (nginx), and the certificate clients trust."""

    certificate: Path
    key: Path
    ca: Path  # MURA_SERVING_TLS_CA: the local CA that signed `certificate`


def _names(hosts: tuple[str, ...]) -> list:
    from cryptography import x509

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def ensure_certificate(
    folder: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> GatewayCertificate:
    """The gateway's certificate for `hosts` in `folder`, made once: a leaf (CA:FALSE, server auth
    only) signed by a local CA whose key is discarded at once, so the certificate clients trust can
    vouch for this one server and never sign another. The leaf's key has mode 0600.

    A folder an older version filled with one self-signed CA:TRUE certificate is made again."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from mura_core.private_files import write_private

    made = GatewayCertificate(folder / "gateway.crt", folder / "gateway.key", folder / "ca.crt")
    if all(path.is_file() for path in made):
        return made
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"MURA gateway CA ({hosts[0]})")])
    ca = _signed_ca(ca_key, ca_name, now)
    leaf = _signed_leaf(key, ca_key, ca_name, hosts, now)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(made.key, pem_key.decode("ascii"))
    made.certificate.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    made.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))  # the CA's key is never written
    return made


# The key usages neither certificate has.
_UNUSED_KEY_USAGES = dict.fromkeys(
    ("content_commitment", "data_encipherment", "key_agreement", "encipher_only", "decipher_only"), False
)


def _signed_ca(ca_key, ca_name, now: datetime.datetime):
    """The local CA's self-signed certificate (CA:TRUE, path length 0: it signs the leaf only)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return (
        x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name, public_key=ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                key_encipherment=False,
                key_cert_sign=True,
                crl_sign=True,
                **_UNUSED_KEY_USAGES,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _signed_leaf(key, ca_key, ca_name, hosts: tuple[str, ...], now: datetime.datetime):
    """The gateway's certificate for `hosts` (CA:FALSE, server auth only), signed by the local CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    return (
        x509.CertificateBuilder(
            subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]),
            issuer_name=ca_name,
            public_key=key.public_key(),
        )
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                key_cert_sign=False,
                crl_sign=False,
                **_UNUSED_KEY_USAGES,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


COMPOSE_OPTIONS = GatewayOptions(
    grpc_listen="8443",
    rest_listen="8444",
    upstream_grpc=(f"tfserving:{SERVING_GRPC_PORT}",),
    upstream_rest=(f"tfserving:{SERVING_REST_PORT}",),
    certificate="/etc/nginx/certs/gateway.crt",
    key="/etc/nginx/certs/gateway.key",
    token="${MURA_GATEWAY_TOKEN}",  # filled in by the nginx image's envsubst of /etc/nginx/templates
)


def compose_template() -> str:
    """infra/gateway/gateway.conf.template: the compose gateway (`make docs` writes it)."""
    header = (
        "# Generated by `python -m serving.gateway compose-template` (make docs): edit serving/gateway.py.\n"
    )
    return header + http_block(COMPOSE_OPTIONS)


def main(argv: list[str] | None = None) -> int:
    """`certificate DIR [HOST ...]` makes the self-signed certificate when DIR has none;
    `compose-template` prints compose's nginx template."""
    parser = argparse.ArgumentParser(prog="python -m serving.gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser(
        "certificate",
        help="write gateway.crt, gateway.key and ca.crt (what clients trust) into DIR unless present",
    )
    make.add_argument("folder", type=Path)
    make.add_argument("hosts", nargs="*", default=["localhost", "127.0.0.1"])
    sub.add_parser("compose-template", help="print infra/gateway/gateway.conf.template")
    args = parser.parse_args(argv)
    if args.command == "compose-template":
        print(compose_template(), end="")
        return 0
    made = ensure_certificate(args.folder, tuple(args.hosts))
    print(f"gateway certificate {made.certificate}, key {made.key}; clients trust {made.ca}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
