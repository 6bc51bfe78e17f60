"""Streaming sha256 of an object in the stack's S3: throughput and peak memory.

    provenance stack up --dir D
    .venv/bin/python benchmarks/objects.py --stack D [--mib 256]

Uploads one object of --mib MiB under `bench/` of the stack's bucket, then hashes it in a fresh
process (as `provenance run`/`verify` do) and prints MiB/s and that process's peak RSS before and
after hashing. Nothing here asserts a time: the numbers are for people to read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = """
import json, resource, sys, time
from provenance.hashing import objects
s3 = objects.client()
s3.list_objects_v2(Bucket=sys.argv[2], MaxKeys=1)  # warm: what follows is the hashing alone
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.monotonic()
digest, info = objects.hash_object(s3, sys.argv[1])
seconds = time.monotonic() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"sha256": digest, "bytes": info.size, "seconds": seconds,
                  "rss_before_kib": before, "rss_after_kib": after}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, type=Path, help="directory of a running stack")
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    doc = json.loads(
        subprocess.run(
            [
                str(Path(sys.executable).parent / "provenance"),
                "stack",
                "status",
                "--dir",
                str(args.stack),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    env = {**os.environ, **doc["env"]}
    os.environ.update(doc["env"])
    from provenance.hashing import objects

    key = f"bench/object-{args.mib}MiB.bin"
    block = hashlib.sha256(b"bench").digest() * (1 << 15)  # 1 MiB
    expected = hashlib.sha256()
    with tempfile.NamedTemporaryFile() as f:
        for _ in range(args.mib):
            f.write(block)
            expected.update(block)
        f.flush()
        objects.client().upload_file(f.name, doc["bucket"], key)
    uri = f"s3://{doc['bucket']}/{key}"
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, uri, doc["bucket"]],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    got = json.loads(out)
    assert got["sha256"] == expected.hexdigest()
    print(
        f"{uri}: {args.mib} MiB in {got['seconds']:.2f} s = {args.mib / got['seconds']:.0f} MiB/s; "
        f"peak RSS {got['rss_before_kib'] // 1024} MiB before, "
        f"{got['rss_after_kib'] // 1024} MiB after hashing"
    )


if __name__ == "__main__":
    main()
