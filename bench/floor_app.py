"""The benchmarks' reference floors, carried in the repo so `make bench` and
`make bench-budget` run in a plain clone. Same definitions as the team's reference
(`../shared/bench/floor_app.py`; pass `--floor` to the benchmarks to run that one):

  GET /floor/hello/<code>   (a) a constant ~1 KB JSON answer: what Flask + gunicorn cost
  GET /floor/redis/<code>   (b) one pipelined Redis round trip of GET, INCR, PFADD and
                                XADD: the least an answer that records a scan can cost

Run it under the project's gunicorn config: `gunicorn -c gunicorn.conf.py floor_app:app`
from this folder (REDIS_URL as for the service). (b) needs its codes loaded first:
`python floor_app.py load N` writes N random 18-digit codes with ~1 KB values under
`floor:c:<code>` and prints the codes, one a line.
"""

from __future__ import annotations

import os
import secrets
import sys
import time

import redis
from flask import Flask, Response, abort, request

app = Flask(__name__)
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))

# ~1 KB, the size of a verify answer, with non-ASCII text as ours has.
_BODY = (
    '{"code":"%s","verdict":"genuine","product":{"name":"有机大米","description":"'
    + "x" * 700
    + '"},"certificate":{"number":"0123OP2400017","status":"valid"}}'
).encode()


@app.get("/floor/hello/<code>")
def hello(code: str) -> Response:
    return Response(_BODY % code.encode(), mimetype="application/json")


@app.get("/floor/redis/<code>")
def one_round_trip(code: str) -> Response:
    key = code.encode()
    pipe = _redis.pipeline(transaction=False)
    pipe.get(b"floor:c:" + key)
    pipe.incr(b"floor:n:" + key)
    pipe.pfadd(b"floor:u:" + key, request.remote_addr or "-")
    pipe.xadd(b"floor:scans", {b"c": key, b"t": b"%d" % int(time.time())}, maxlen=100_000, approximate=True)
    value = pipe.execute()[0]
    if value is None:
        abort(404)
    return Response(value, mimetype="application/json")


def load(n: int) -> None:
    pipe = _redis.pipeline(transaction=False)
    for i in range(n):
        code = f"{secrets.randbelow(999) + 1:04d}24{secrets.randbelow(10**12):012d}"
        pipe.set(b"floor:c:" + code.encode(), _BODY % code.encode())
        print(code)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    load(int(sys.argv[2]))
