#!/usr/bin/env python3
"""Writes the certificates the TLS tests need into DIR (which must exist), made fresh on each run.

    make_certs.py DIR

Files (PEM, ECDSA P-256 keys):
    ca.pem                       a private CA, the one tests trust with --cacert / DownloadOptions::ca_file
    good.pem, good.key           leaf signed by the CA for 127.0.0.1, ::1 and localhost
    other.pem, other.key         leaf signed by the CA for other.invalid only (a certificate for another host)
    expired.pem, expired.key     leaf for 127.0.0.1 signed by the CA, valid only in the past
    self.pem, self.key           self-signed leaf for 127.0.0.1 (no CA vouches for it)
Needs python3-cryptography (Debian package python3-cryptography).
"""

import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def write(directory, file, data):
    # Keys are secrets in spirit: owner-only, whoever runs the tests.
    fd = os.open(os.path.join(directory, file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def leaf(subject, sans, issuer_name, issuer_key, not_before, not_after):
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(name(subject))
               .issuer_name(issuer_name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before)
               .not_valid_after(not_after)
               .add_extension(x509.SubjectAlternativeName(sans), critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return key, builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_certs.py DIR")
    directory = sys.argv[1]
    now = datetime.datetime.now(datetime.timezone.utc)
    # Backdated a day: a clock a little behind must not make a fresh certificate "not yet valid".
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    loopback = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1")),
                x509.DNSName("localhost")]

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("imgdl test CA")
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name)
          .issuer_name(ca_name)
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(start)
          .not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    write(directory, "ca.pem", cert_pem(ca))

    leaves = {
        "good": leaf("127.0.0.1", loopback, ca_name, ca_key, start, end),
        "other": leaf("other.invalid", [x509.DNSName("other.invalid")], ca_name, ca_key, start, end),
        "expired": leaf("127.0.0.1", loopback, ca_name, ca_key, now - datetime.timedelta(days=30),
                        now - datetime.timedelta(days=1)),
        "self": leaf("127.0.0.1", loopback, name("127.0.0.1"), None, start, end),
    }
    for stem, (key, cert) in leaves.items():
        write(directory, stem + ".pem", cert_pem(cert))
        write(directory, stem + ".key", key_pem(key))


if __name__ == "__main__":
    main()
