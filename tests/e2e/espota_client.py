#!/usr/bin/env python3
"""An ArduinoOTA upload client, written from the protocol (PROTOCOLS.md §5)
the way the Arduino tools speak it, for the e2e tests: the invitation over
UDP, the AUTH challenge, then the device connects back and takes the image
in 1024-byte chunks, answering each with a count and the last with OK.

--classic reads the answer to the invitation as the classic espota.py does
(37 bytes: a 64-digit nonce arrives cut to 32) and answers with MD5;
otherwise as arduino-esp32 3.3.1's does (PBKDF2-HMAC-SHA256 on 64 digits).
Exit status 0 once the device said OK, 1 otherwise; every wait is bounded."""
import argparse
import hashlib
import os
import socket
import sys

FLASH, SPIFFS, AUTH = 0, 100, 200


def auth_answer(nonce, password, cnonce_text, classic):
    if classic:
        cnonce = hashlib.md5(cnonce_text.encode()).hexdigest()
        key = hashlib.md5(password.encode()).hexdigest()
        response = hashlib.md5(("%s:%s:%s" % (key, nonce, cnonce)).encode()).hexdigest()
    else:
        cnonce = hashlib.sha256(cnonce_text.encode()).hexdigest()
        key = hashlib.sha256(password.encode()).hexdigest()
        dk = hashlib.pbkdf2_hmac("sha256", key.encode(), ("%s:%s" % (nonce, cnonce)).encode(), 10000).hex()
        response = hashlib.sha256(("%s:%s:%s" % (dk, nonce, cnonce)).encode()).hexdigest()
    return "%d %s %s\n" % (AUTH, cnonce, response)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-i", "--ip", required=True)
    ap.add_argument("-p", "--port", type=int, default=3232)
    ap.add_argument("-I", "--host-ip", default="127.0.0.1")
    ap.add_argument("-P", "--host-port", type=int, default=0)
    ap.add_argument("-a", "--auth", default="")
    ap.add_argument("-f", "--file", required=True)
    ap.add_argument("-s", "--spiffs", action="store_true")
    ap.add_argument("--classic", action="store_true")
    ap.add_argument("--md5", help="announce this MD5 instead of the file's")
    ap.add_argument("--stop-after", type=int, help="close the connection after this many bytes")
    a = ap.parse_args()

    data = open(a.file, "rb").read()
    md5 = a.md5 or hashlib.md5(data).hexdigest()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((a.host_ip, a.host_port))
    server.listen(1)
    host_port = server.getsockname()[1]
    invitation = "%d %d %d %s\n" % (SPIFFS if a.spiffs else FLASH, host_port, len(data), md5)

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((a.host_ip, 0))
    udp.settimeout(2)
    answer = None
    for _ in range(5):
        udp.sendto(invitation.encode(), (a.ip, a.port))
        try:
            answer = udp.recv(37 if a.classic else 69).decode()
            break
        except socket.timeout:
            continue
    if answer is None:
        print("espota: no answer to the invitation", file=sys.stderr)
        return 1
    if answer.startswith("AUTH"):
        nonce = answer.split()[1]
        cnonce_text = "%s%u%s%s" % (a.file, len(data), md5, a.ip)
        udp.sendto(auth_answer(nonce, a.auth, cnonce_text, a.classic).encode(), (a.ip, a.port))
        udp.settimeout(10)
        try:
            answer = udp.recv(64).decode()
        except socket.timeout:
            answer = "no answer to the authentication"
    if answer != "OK":
        print("espota: %s" % answer, file=sys.stderr)
        return 1

    server.settimeout(10)
    try:
        conn, _ = server.accept()
    except socket.timeout:
        print("espota: the device did not connect", file=sys.stderr)
        return 1
    conn.settimeout(10)
    replies = ""
    try:
        for off in range(0, len(data), 1024):
            if a.stop_after is not None and off >= a.stop_after:
                conn.close()
                print("espota: stopped after %d bytes" % off, file=sys.stderr)
                return 1
            conn.sendall(data[off:off + 1024])
            replies = conn.recv(320).decode(errors="replace")
            if "ERROR" in replies:
                break
        while "OK" not in replies and "ERROR" not in replies:
            more = conn.recv(320).decode(errors="replace")
            if not more:
                break
            replies += more
    except OSError as e:
        replies += " (%s)" % e
    conn.close()
    if replies.endswith("OK"):
        print("espota: OK")
        return 0
    print("espota: %s" % replies.lstrip("0123456789"), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
