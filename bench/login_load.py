#!/usr/bin/env python3
"""Sign-in load harness: each worker runs whole sign-ins (GET /authorize, GET /authorize/resume,
POST /login with the right password) against a running Portcullis, for a fixed time, and the
script reports completed sign-ins per second and the POST /login latency. Standard library only.

Usage: login_load.py ISSUER CA_PEM CLIENT_ID EMAIL PASSWORD [WORKERS] [SECONDS]
(bench/login-load.sh sets everything up and calls this.)
"""
import http.client
import re
import ssl
import sys
import threading
import time
import urllib.parse

issuer, ca, client_id, email, password = sys.argv[1:6]
workers = int(sys.argv[6]) if len(sys.argv) > 6 else 4
seconds = float(sys.argv[7]) if len(sys.argv) > 7 else 15.0
host = urllib.parse.urlparse(issuer).netloc
hostname, port = host.split(":")
ctx = ssl.create_default_context(cafile=ca)
authorize = "/authorize?" + urllib.parse.urlencode({
    "response_type": "code", "client_id": client_id,
    "redirect_uri": "http://127.0.0.1/cb", "scope": "openid", "state": "s", "nonce": "n",
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "code_challenge_method": "S256",
})
lock = threading.Lock()
done, failed, latencies = 0, 0, []
stop_at = 0.0


def cookie_of(resp, name):
    for k, v in resp.getheaders():
        if k.lower() == "set-cookie" and v.startswith(name + "="):
            return v.split(";", 1)[0]
    return None


def worker():
    global done, failed
    conn = http.client.HTTPSConnection(hostname, int(port), context=ctx)
    while time.time() < stop_at:
        try:
            conn.request("GET", authorize)
            r = conn.getresponse()
            r.read()
            flow = cookie_of(r, "__Host-portcullis-flow")
            conn.request("GET", "/authorize/resume", headers={"Cookie": flow})
            r = conn.getresponse()
            page = r.read().decode()
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            body = urllib.parse.urlencode({"csrf_token": csrf, "email": email, "password": password})
            t0 = time.perf_counter()
            conn.request("POST", "/login", body=body, headers={
                "Cookie": flow, "Origin": issuer,
                "Content-Type": "application/x-www-form-urlencoded"})
            r = conn.getresponse()
            r.read()
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                if r.status == 303:
                    done += 1
                    latencies.append(ms)
                else:
                    failed += 1
                    if failed == 1:
                        print(f"first failure: POST /login answered {r.status}", file=sys.stderr)
        except Exception as e:  # a dropped connection: count it and reconnect
            with lock:
                failed += 1
                if failed == 1:
                    print(f"first failure: {e!r}", file=sys.stderr)
            conn.close()
            conn = http.client.HTTPSConnection(hostname, int(port), context=ctx)


stop_at = time.time() + seconds
threads = [threading.Thread(target=worker) for _ in range(workers)]
start = time.time()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.time() - start
latencies.sort()
p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0
print(f"RESULT signins={done} failed={failed} per_second={done / elapsed:.1f} "
      f"login_p50_ms={p(0.50):.1f} login_p99_ms={p(0.99):.1f} workers={workers} seconds={elapsed:.1f}")
