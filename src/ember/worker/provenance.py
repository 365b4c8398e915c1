"""Content Credentials (C2PA) on every output: the image says it was made by a trained algorithm, and with what.

A deployment may bring its own signing chain (`EMBER_C2PA_CERT` / `EMBER_C2PA_KEY` pointing at PEM files).
Otherwise Ember makes a local ES256 certificate authority and a signing leaf once, in its data directory:
readers then report the signature as valid but from an untrusted (local) authority.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ember.media import MIMETYPES

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
SIGNABLE_TYPES = MIMETYPES
# The SDK embeds a thumbnail of the image by default: decoding, resizing and re-encoding it was about 95 % of
# the signing time of a 1024² output and grew the file by most of its size again. The output is its own picture.
SIGNING_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}


class ProvenanceError(Exception):
    """Content Credentials could not be attached or read."""


@dataclass(frozen=True)
class SigningChain:
    cert_chain_pem: bytes  # leaf first, then the authority
    private_key_pem: bytes


@dataclass(frozen=True)
class Origin:
    """What made an image: the facts its Content Credentials carry."""

    base_model: str
    custom_models: tuple[str, ...] = ()
    software: str = "Ember"
    software_version: str = ""
    title: str = "generated image"


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ember self-hosted"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_local_chain(days: int = 3650) -> SigningChain:
    """A local certificate authority and an ES256 signing leaf with the extensions C2PA validators require."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Ember local content credentials CA"))
        .issuer_name(_name("Ember local content credentials CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Ember content credentials signer"))
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return SigningChain(
        cert_chain_pem=leaf_cert.public_bytes(pem) + ca_cert.public_bytes(pem),
        private_key_pem=leaf_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def load_or_create_chain(directory: Path) -> SigningChain:
    """The deployment's chain: configured PEM files, else a local chain kept (0600) in `directory`."""
    cert_env, key_env = os.environ.get("EMBER_C2PA_CERT"), os.environ.get("EMBER_C2PA_KEY")
    if cert_env and key_env:
        return SigningChain(Path(cert_env).read_bytes(), Path(key_env).read_bytes())
    cert_path, key_path = directory / "c2pa-chain.pem", directory / "c2pa-key.pem"
    if cert_path.is_file() and key_path.is_file():
        return SigningChain(cert_path.read_bytes(), key_path.read_bytes())
    chain = make_local_chain()
    directory.mkdir(parents=True, exist_ok=True)
    for path, data in ((cert_path, chain.cert_chain_pem), (key_path, chain.private_key_pem)):
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return chain


SHARED_CHAIN_KEYS = ("system/content-credentials/chain.pem", "system/content-credentials/key.pem")


def load_or_create_shared_chain(blobs: Any, directory: Path) -> SigningChain:
    """The deployment's one signing identity, the same on every node: a configured chain (PEM contents in
    `EMBER_C2PA_CERT_PEM` / `EMBER_C2PA_KEY_PEM`, which travel with the engine pool's environment, or PEM files
    named by `EMBER_C2PA_CERT` / `EMBER_C2PA_KEY`), else the chain kept in the deployment's blob store, made
    once (from a chain this data directory already had, so that a single-node deployment keeps its identity).
    The engine pool calls this before any worker starts; workers then only read."""
    cert_pem, key_pem = os.environ.get("EMBER_C2PA_CERT_PEM"), os.environ.get("EMBER_C2PA_KEY_PEM")
    if cert_pem and key_pem:
        return SigningChain(cert_pem.encode(), key_pem.encode())
    if os.environ.get("EMBER_C2PA_CERT") and os.environ.get("EMBER_C2PA_KEY"):
        return load_or_create_chain(directory)
    cert_key, private_key = SHARED_CHAIN_KEYS
    if blobs.exists(cert_key) and blobs.exists(private_key):
        return SigningChain(blobs.get(cert_key), blobs.get(private_key))
    chain = load_or_create_chain(directory)
    blobs.put(private_key, chain.private_key_pem, "application/x-pem-file")
    blobs.put(cert_key, chain.cert_chain_pem, "application/x-pem-file")
    return chain


def manifest_for(origin: Origin) -> dict[str, Any]:
    agent = {"name": origin.software, "version": origin.software_version} if origin.software_version else {
        "name": origin.software
    }
    return {
        "claim_generator_info": [agent],
        "title": origin.title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": agent,
                        }
                    ]
                },
            },
            {
                "label": "org.ember.generation",
                "data": {"baseModel": origin.base_model, "customModels": list(origin.custom_models)},
            },
        ],
    }


def sign_image(data: bytes, mimetype: str, origin: Origin, chain: SigningChain) -> bytes:
    """Return the image with a signed C2PA manifest embedded."""
    if mimetype not in SIGNABLE_TYPES:
        raise ProvenanceError(f"cannot attach content credentials to {mimetype}")
    import c2pa

    try:
        signer = c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(
                alg="es256", sign_cert=chain.cert_chain_pem, private_key=chain.private_key_pem, ta_url=None
            )
        )
        context = c2pa.Context(settings=c2pa.Settings.from_json(json.dumps(SIGNING_SETTINGS)))
        with signer, c2pa.Builder(json.dumps(manifest_for(origin)), context=context) as builder:
            dest = io.BytesIO()
            builder.sign(signer, mimetype, io.BytesIO(data), dest)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"signing content credentials failed: {exc}") from exc
    return dest.getvalue()


def read_credentials(data: bytes, mimetype: str) -> dict[str, Any]:
    """The manifest store embedded in an image, as the C2PA reader reports it (with validation state)."""
    import c2pa

    try:
        with c2pa.Reader(mimetype, io.BytesIO(data)) as reader:
            report: dict[str, Any] = json.loads(reader.json())
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"no readable content credentials: {exc}") from exc
    return report
