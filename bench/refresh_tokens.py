#!/usr/bin/env python3
"""Prints N fresh refresh tokens, one per line, each the start of its own family: N whole
sign-ins (GET /authorize, GET /authorize/resume, POST /login) and code exchanges against a
running Portcullis. Standard library only.

Usage: refresh_tokens.py ISSUER CA_PEM CLIENT_ID CLIENT_SECRET EMAIL PASSWORD N
(bench/refresh-load.sh sets everything up and calls this.)
"""
import base64
import hashlib
import http.client
import json
import re
import secrets
import ssl
import sys
import urllib.parse

issuer, ca, client_id, client_secret, email, password, n = sys.argv[1:8]
hostname, port = urllib.parse.urlparse(issuer).netloc.split(":")
ctx = ssl.create_default_context(cafile=ca)
redirect = "http://127.0.0.1/cb"
basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


def cookie_of(resp, name):
    for k, v in resp.getheaders():
        if k.lower() == "set-cookie" and v.startswith(name + "="):
            return v.split(";", 1)[0]
    raise SystemExit(f"no {name} cookie (HTTP {resp.status})")


conn = http.client.HTTPSConnection(hostname, int(port), context=ctx)
for _ in range(int(n)):
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    conn.request("GET", "/authorize?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect,
        "scope": "openid read:things", "state": "s", "nonce": "n",
        "code_challenge": challenge, "code_challenge_method": "S256",
    }))
    r = conn.getresponse()
    r.read()
    flow = cookie_of(r, "__Host-portcullis-flow")
    conn.request("GET", "/authorize/resume", headers={"Cookie": flow})
    r = conn.getresponse()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', r.read().decode()).group(1)
    conn.request("POST", "/login", body=urllib.parse.urlencode(
        {"csrf_token": csrf, "email": email, "password": password}), headers={
        "Cookie": flow, "Origin": issuer, "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    code = urllib.parse.parse_qs(urllib.parse.urlparse(r.getheader("Location")).query)["code"][0]
    conn.request("POST", "/token", body=urllib.parse.urlencode({
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
        "code_verifier": verifier}), headers={
        "Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    body = json.loads(r.read())
    print(body["refresh_token"])
