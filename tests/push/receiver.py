#!/usr/bin/env python3
"""A browser's push service and user agent in one, for clawd's tests.

It makes a subscription (a P-256 key pair and a 16-byte auth secret), serves
its endpoint on loopback, and for every push it receives checks the VAPID
signature (RFC 8292) against the gateway's public key given on the command
line, decrypts the payload (RFC 8291, aes128gcm) with the subscription's
private key, answers with the next scripted status, and prints one JSON line
per push on stdout. Its first line is the subscription, as a browser's
PushSubscription.toJSON() gives it.

    receiver.py GATEWAY_PUBLIC_KEY [STATUS ...]

Statuses are answered in turn, then 201. A line "STATUS ..." on stdin
replaces the statuses still to come.
"""

import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt as vapid_jwt


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


GATEWAY_KEY = sys.argv[1]
statuses = [int(s) for s in sys.argv[2:]]
lock = threading.Lock()
private_key = ec.generate_private_key(ec.SECP256R1())
public = private_key.public_key().public_bytes(
    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
)
auth_secret = os.urandom(16)


def next_status():
    with lock:
        return statuses.pop(0) if statuses else 201


class Push(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        # Decided on arrival: an answer changed while this one is checked
        # is for the pushes after it.
        status = next_status()
        report = {
            "path": self.path,
            "contentEncoding": self.headers.get("Content-Encoding"),
            "ttl": self.headers.get("TTL"),
            "urgency": self.headers.get("Urgency"),
            "at": time.time(),
        }
        # RFC 8292: "vapid t=JWT, k=KEY"; k must be the gateway's key and
        # the JWT must verify with it, for this origin.
        auth = self.headers.get("Authorization", "")
        try:
            scheme, rest = auth.split(" ", 1)
            parts = dict(p.strip().split("=", 1) for p in rest.split(","))
            assert scheme == "vapid", "scheme " + scheme
            assert parts["k"] == GATEWAY_KEY, "k is not the gateway's key"
            claims = vapid_jwt.decode(parts["t"], GATEWAY_KEY)
            origin = "http://%s:%d" % self.server.server_address[:2]
            assert claims["aud"] == origin, "aud %s" % claims["aud"]
            assert claims["exp"] > time.time(), "expired"
            assert claims["exp"] <= time.time() + 24 * 3600, "exp over 24 h"
            report["vapid"] = "ok"
            report["sub"] = claims.get("sub")
        except Exception as e:  # the test reads what failed
            report["vapid"] = "bad: %r" % (e,)
        try:
            plain = http_ece.decrypt(
                body,
                private_key=private_key,
                auth_secret=auth_secret,
                version="aes128gcm",
            )
            report["payload"] = json.loads(plain)
        except Exception as e:
            report["payload"] = None
            report["decryptError"] = repr(e)
        report["status"] = status
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()
        with lock:
            print(json.dumps(report), flush=True)

    def log_message(self, *args):
        pass


def read_commands():
    global statuses
    for line in sys.stdin:
        words = line.split()
        if words and words[0] == "STATUS":
            with lock:
                statuses = [int(s) for s in words[1:]]
            print(json.dumps({"statusesSet": len(words) - 1}), flush=True)


server = ThreadingHTTPServer(("127.0.0.1", 0), Push)
host, port = server.server_address[:2]
print(
    json.dumps(
        {
            "endpoint": "http://%s:%d/push/%s" % (host, port, b64url(os.urandom(8))),
            "keys": {"p256dh": b64url(public), "auth": b64url(auth_secret)},
        }
    ),
    flush=True,
)
threading.Thread(target=read_commands, daemon=True).start()
server.serve_forever()
