"""The S3 endpoint driven by boto3 (pinned in requirements.txt), one check per operation.

Run by crates/roost/tests/s3.rs, which starts the server and passes, in the environment:
  S3_ENDPOINT                 http://127.0.0.1:<port>
  KEY_ID, SECRET              a key of the admin (full rights)
  RO_KEY_ID, RO_SECRET        a read-only key of the admin
  OTHER_KEY_ID, OTHER_SECRET  a key of another user, member of no project of the admin's
  LIFECYCLE_DAY_SECONDS       how long a lifecycle "day" lasts on this server
Every check prints "ok <name>"; the first failure raises and exits non-zero.
"""

import base64
import hashlib
import hmac
import io
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]
REGION = "us-east-1"
ONLY = set(sys.argv[1:])


def client(key_id, secret, **config):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version=config.pop("signature_version", "s3v4"), **config),
    )


s3 = client(os.environ["KEY_ID"], os.environ["SECRET"])
ro = client(os.environ["RO_KEY_ID"], os.environ["RO_SECRET"])
other = client(os.environ["OTHER_KEY_ID"], os.environ["OTHER_SECRET"])
BUCKET = "boto-" + uuid.uuid4().hex[:10]


def error_code(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError(f"{fn.__name__} succeeded; an error was expected")


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def composite_etag(parts):
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"


CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def buckets():
    s3.create_bucket(Bucket=BUCKET)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert BUCKET in names, names
    s3.head_bucket(Bucket=BUCKET)
    loc = s3.get_bucket_location(Bucket=BUCKET)
    assert loc.get("LocationConstraint") in (None, ""), loc
    assert error_code(s3.create_bucket, Bucket=BUCKET) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
    assert error_code(s3.create_bucket, Bucket="Not_Valid") == "InvalidBucketName"
    assert error_code(s3.head_bucket, Bucket="no-such-bucket-" + uuid.uuid4().hex[:6]) in ("404", "NoSuchBucket")
    assert "Status" not in s3.get_bucket_versioning(Bucket=BUCKET)


@check
def put_get_head_with_metadata():
    body = b"hello, roost\n"
    put = s3.put_object(
        Bucket=BUCKET,
        Key="docs/hello.txt",
        Body=body,
        ContentType="text/plain; charset=utf-8",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="hello.txt"',
        Metadata={"Color": "blue", "owner": "team-a"},
    )
    assert put["ETag"] == f'"{md5_hex(body)}"', put["ETag"]
    head = s3.head_object(Bucket=BUCKET, Key="docs/hello.txt")
    assert head["ContentLength"] == len(body)
    assert head["ContentType"] == "text/plain; charset=utf-8", head["ContentType"]
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == 'attachment; filename="hello.txt"'
    assert head["Metadata"] == {"color": "blue", "owner": "team-a"}, head["Metadata"]
    assert head["ETag"] == put["ETag"]
    got = s3.get_object(Bucket=BUCKET, Key="docs/hello.txt")
    assert got["Body"].read() == body
    assert got["Metadata"]["color"] == "blue"
    assert error_code(s3.get_object, Bucket=BUCKET, Key="docs/missing") == "NoSuchKey"
    assert error_code(s3.head_object, Bucket=BUCKET, Key="docs/missing") == "404"
    # Overwrite: the new content wins.
    s3.put_object(Bucket=BUCKET, Key="docs/hello.txt", Body=b"v2")
    assert s3.get_object(Bucket=BUCKET, Key="docs/hello.txt")["Body"].read() == b"v2"
    s3.put_object(Bucket=BUCKET, Key="docs/hello.txt", Body=body, ContentType="text/plain")
    empty = s3.put_object(Bucket=BUCKET, Key="empty", Body=b"")
    assert empty["ETag"] == f'"{md5_hex(b"")}"'
    assert s3.get_object(Bucket=BUCKET, Key="empty")["Body"].read() == b""


@check
def content_md5_is_verified():
    body = b"checked bytes"
    good = base64.b64encode(hashlib.md5(body).digest()).decode()
    s3.put_object(Bucket=BUCKET, Key="md5/good", Body=body, ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    assert error_code(s3.put_object, Bucket=BUCKET, Key="md5/bad", Body=body, ContentMD5=bad) == "BadDigest"
    assert error_code(s3.head_object, Bucket=BUCKET, Key="md5/bad") == "404"


@check
def keys_are_strings_not_paths():
    keys = [
        "../../etc/passwd",
        "/leading/slash",
        "a//double",
        "dot/./segment",
        "日本語/ファイル名 with spaces.txt",
        "emoji-🦀",
        "x" * 1024,
        "percent%2Fand+plus?query#hash",
    ]
    for k in keys:
        s3.put_object(Bucket=BUCKET, Key=k, Body=k.encode())
    for k in keys:
        assert s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() == k.encode(), k
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    for k in keys:
        assert k in listed, k
    assert error_code(s3.put_object, Bucket=BUCKET, Key="y" * 1025, Body=b"") in ("KeyTooLongError", "400")
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys]})


@check
def list_v2_and_v1():
    keys = ["list/a.txt", "list/b/1.txt", "list/b/2.txt", "list/c/1.txt", "list/d.txt", "list/e.txt"]
    for k in keys:
        s3.put_object(Bucket=BUCKET, Key=k, Body=b"x")
    r = s3.list_objects_v2(Bucket=BUCKET, Prefix="list/")
    assert [o["Key"] for o in r["Contents"]] == keys, r
    assert r["KeyCount"] == 6 and not r["IsTruncated"]
    r = s3.list_objects_v2(Bucket=BUCKET, Prefix="list/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["list/a.txt", "list/d.txt", "list/e.txt"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["list/b/", "list/c/"]
    r = s3.list_objects_v2(Bucket=BUCKET, Prefix="list/", StartAfter="list/b/2.txt")
    assert [o["Key"] for o in r["Contents"]] == keys[3:]
    # Pagination with max-keys and continuation tokens, prefixes counted as entries.
    seen, token, pages = [], None, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=BUCKET, Prefix="list/", Delimiter="/", MaxKeys=2, **kw)
        pages += 1
        seen += [o["Key"] for o in r.get("Contents", [])] + [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    assert sorted(seen) == ["list/a.txt", "list/b/", "list/c/", "list/d.txt", "list/e.txt"], seen
    assert pages == 3, pages
    paginator = s3.get_paginator("list_objects_v2")
    all_keys = [o["Key"] for p in paginator.paginate(Bucket=BUCKET, Prefix="list/", PaginationConfig={"PageSize": 4}) for o in p["Contents"]]
    assert all_keys == keys
    # V1: marker and NextMarker.
    r = s3.list_objects(Bucket=BUCKET, Prefix="list/", MaxKeys=2)
    assert [o["Key"] for o in r["Contents"]] == keys[:2] and r["IsTruncated"]
    r = s3.list_objects(Bucket=BUCKET, Prefix="list/", Marker="list/b/2.txt")
    assert [o["Key"] for o in r["Contents"]] == keys[3:]
    r = s3.list_objects(Bucket=BUCKET, Prefix="list/", Delimiter="/", MaxKeys=2)
    assert r["IsTruncated"] and r["NextMarker"] == "list/b/", r
    r = s3.list_objects(Bucket=BUCKET, Prefix="nothing/")
    assert "Contents" not in r
    r = s3.list_objects_v2(Bucket=BUCKET, Prefix="list/", MaxKeys=0)
    assert r["KeyCount"] == 0


@check
def ranged_get():
    body = bytes(range(256)) * 4
    s3.put_object(Bucket=BUCKET, Key="range.bin", Body=body)
    r = s3.get_object(Bucket=BUCKET, Key="range.bin", Range="bytes=10-19")
    assert r["Body"].read() == body[10:20]
    assert r["ContentRange"] == f"bytes 10-19/{len(body)}", r["ContentRange"]
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=BUCKET, Key="range.bin", Range="bytes=-5")["Body"].read() == body[-5:]
    assert s3.get_object(Bucket=BUCKET, Key="range.bin", Range="bytes=1000-")["Body"].read() == body[1000:]
    assert error_code(s3.get_object, Bucket=BUCKET, Key="range.bin", Range="bytes=5000-6000") == "InvalidRange"


@check
def conditional_requests():
    put = s3.put_object(Bucket=BUCKET, Key="cond", Body=b"conditional")
    etag = put["ETag"]
    assert s3.get_object(Bucket=BUCKET, Key="cond", IfMatch=etag)["Body"].read() == b"conditional"
    assert error_code(s3.get_object, Bucket=BUCKET, Key="cond", IfMatch='"0000"') == "PreconditionFailed"
    assert error_code(s3.get_object, Bucket=BUCKET, Key="cond", IfNoneMatch=etag) == "304"
    assert s3.get_object(Bucket=BUCKET, Key="cond", IfNoneMatch='"0000"')["Body"].read() == b"conditional"
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    assert error_code(s3.get_object, Bucket=BUCKET, Key="cond", IfModifiedSince=future) == "304"
    assert s3.get_object(Bucket=BUCKET, Key="cond", IfModifiedSince=past)["Body"].read() == b"conditional"
    assert error_code(s3.get_object, Bucket=BUCKET, Key="cond", IfUnmodifiedSince=past) == "PreconditionFailed"
    assert error_code(s3.head_object, Bucket=BUCKET, Key="cond", IfNoneMatch=etag) == "304"
    # Conditional writes: create only if absent.
    assert error_code(s3.put_object, Bucket=BUCKET, Key="cond", Body=b"x", IfNoneMatch="*") == "PreconditionFailed"
    s3.put_object(Bucket=BUCKET, Key="cond-new", Body=b"x", IfNoneMatch="*")


@check
def copy_object():
    s3.put_object(Bucket=BUCKET, Key="copy/src", Body=b"copy me", ContentType="text/x-src", Metadata={"k": "v"})
    s3.copy_object(Bucket=BUCKET, Key="copy/dst", CopySource={"Bucket": BUCKET, "Key": "copy/src"})
    head = s3.head_object(Bucket=BUCKET, Key="copy/dst")
    assert head["ContentType"] == "text/x-src" and head["Metadata"] == {"k": "v"}, head
    assert s3.get_object(Bucket=BUCKET, Key="copy/dst")["Body"].read() == b"copy me"
    s3.copy_object(
        Bucket=BUCKET,
        Key="copy/replaced",
        CopySource=f"{BUCKET}/copy/src",
        MetadataDirective="REPLACE",
        ContentType="text/x-new",
        Metadata={"fresh": "1"},
    )
    head = s3.head_object(Bucket=BUCKET, Key="copy/replaced")
    assert head["ContentType"] == "text/x-new" and head["Metadata"] == {"fresh": "1"}, head
    # Copying onto itself without REPLACE is refused, as in S3.
    assert error_code(s3.copy_object, Bucket=BUCKET, Key="copy/src", CopySource=f"{BUCKET}/copy/src") == "InvalidRequest"
    assert error_code(s3.copy_object, Bucket=BUCKET, Key="copy/x", CopySource=f"{BUCKET}/copy/none") == "NoSuchKey"


@check
def delete_object_and_objects():
    for k in ("del/1", "del/2", "del/3"):
        s3.put_object(Bucket=BUCKET, Key=k, Body=b"d")
    s3.delete_object(Bucket=BUCKET, Key="del/1")
    s3.delete_object(Bucket=BUCKET, Key="del/never-existed")  # 204 either way
    r = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "del/2"}, {"Key": "del/3"}, {"Key": "del/none"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["del/2", "del/3", "del/none"], r
    r = s3.list_objects_v2(Bucket=BUCKET, Prefix="del/")
    assert r["KeyCount"] == 0, r
    s3.put_object(Bucket=BUCKET, Key="del/q", Body=b"d")
    r = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "del/q"}], "Quiet": True})
    assert not r.get("Deleted") and not r.get("Errors"), r


@check
def multipart_upload():
    key = "mp/object.bin"
    part1 = os.urandom(5 * 1024 * 1024)
    part2 = os.urandom(1024 * 1024 + 17)
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ContentType="application/x-test", Metadata={"m": "1"})
    uid = up["UploadId"]
    e1 = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=1, Body=part1)["ETag"]
    md5 = base64.b64encode(hashlib.md5(part2).digest()).decode()
    e2 = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=2, Body=part2, ContentMD5=md5)["ETag"]
    assert e1 == f'"{md5_hex(part1)}"'
    parts = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, len(part1)), (2, len(part2))], parts
    uploads = s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    assert any(u["UploadId"] == uid and u["Key"] == key for u in uploads), uploads
    # A wrong ETag or order is refused and the upload stays.
    bad = {"Parts": [{"PartNumber": 1, "ETag": '"00"'}, {"PartNumber": 2, "ETag": e2}]}
    assert error_code(s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload=bad) == "InvalidPart"
    order = {"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]}
    code = error_code(s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload=order)
    assert code == "InvalidPartOrder", code
    done = s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}
    )
    assert done["ETag"] == f'"{composite_etag([part1, part2])}"', done["ETag"]
    got = s3.get_object(Bucket=BUCKET, Key=key)
    assert got["Body"].read() == part1 + part2
    assert got["ContentType"] == "application/x-test" and got["Metadata"] == {"m": "1"}
    assert error_code(s3.list_parts, Bucket=BUCKET, Key=key, UploadId=uid) == "NoSuchUpload"
    # Too small a part that is not the last.
    up = s3.create_multipart_upload(Bucket=BUCKET, Key="mp/small")["UploadId"]
    a = s3.upload_part(Bucket=BUCKET, Key="mp/small", UploadId=up, PartNumber=1, Body=b"a")["ETag"]
    b = s3.upload_part(Bucket=BUCKET, Key="mp/small", UploadId=up, PartNumber=2, Body=b"b")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": a}, {"PartNumber": 2, "ETag": b}]}
    assert error_code(s3.complete_multipart_upload, Bucket=BUCKET, Key="mp/small", UploadId=up, MultipartUpload=parts) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket=BUCKET, Key="mp/small", UploadId=up)
    assert error_code(s3.list_parts, Bucket=BUCKET, Key="mp/small", UploadId=up) == "NoSuchUpload"
    uploads = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    assert not any(u["UploadId"] == up for u in uploads)


@check
def upload_part_copy():
    src = os.urandom(6 * 1024 * 1024)
    s3.put_object(Bucket=BUCKET, Key="upc/src", Body=src)
    key = "upc/dst"
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    p1 = s3.upload_part_copy(
        Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=1, CopySource=f"{BUCKET}/upc/src", CopySourceRange=f"bytes=0-{5 * 1024 * 1024 - 1}"
    )["CopyPartResult"]["ETag"]
    p2 = s3.upload_part_copy(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=2, CopySource={"Bucket": BUCKET, "Key": "upc/src"})["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 2, "ETag": p2}]})
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == src[: 5 * 1024 * 1024] + src


def bucket_dirs():
    root = os.environ.get("OBJECTS_DIR")
    return set(os.listdir(root)) if root and os.path.isdir(root) else set()


def bucket_files(others):
    """Every regular file under the data directories (objects/<bucket-id>/) of buckets not
    in `others`, relative to objects/, or None when the suite was not told where the data lives."""
    root = os.environ.get("OBJECTS_DIR")
    if not root:
        return None
    found = set()
    for d in bucket_dirs() - others:
        for dirpath, _, files in os.walk(os.path.join(root, d)):
            found.update(os.path.relpath(os.path.join(dirpath, f), root) for f in files)
    return found


@check
def multipart_objects_are_their_parts():
    """A completed upload keeps its part files (no copy): reads across part boundaries,
    copies, versions and deletes of such an object."""
    mb = 1024 * 1024
    bucket = BUCKET + "-mpx"
    others = bucket_dirs()
    s3.create_bucket(Bucket=bucket)
    before = bucket_files(others)
    sizes = [5 * mb, 5 * mb + 3, 5 * mb, 1234]
    parts = [os.urandom(n) for n in sizes]
    whole = b"".join(parts)
    key = "mpx/object.bin"

    def upload(key, parts, extra=None):
        uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        listed = []
        for i, p in enumerate(parts, start=1):
            e = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=i * 2, Body=p)["ETag"]
            listed.append({"PartNumber": i * 2, "ETag": e})
        if extra is not None:  # uploaded, but not listed when completing
            s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=99, Body=extra)
        done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": listed})
        assert done["ETag"] == f'"{composite_etag(parts)}"', done["ETag"]
        return done

    upload(key, parts, extra=os.urandom(mb))
    got = s3.get_object(Bucket=bucket, Key=key)
    body = got["Body"].read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(whole).hexdigest()
    assert got["ContentLength"] == len(whole) and got["ETag"] == f'"{composite_etag(parts)}"'
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(whole), head
    b1, b2, b3 = sizes[0], sizes[0] + sizes[1], sizes[0] + sizes[1] + sizes[2]
    ranges = [
        (0, 0), (0, b1 - 1), (b1 - 1, b1), (b1, b1), (b1 - 10, b2 + 10), (b1 + 7, b2 - 7),
        (100, len(whole) - 100), (b3 - 1, len(whole) - 1), (b3, len(whole) - 1), (b2 - 1, b3),
    ]
    for a, b in ranges:
        r = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={a}-{b}")
        data = r["Body"].read()
        assert data == whole[a : b + 1], (a, b, len(data))
        assert r["ContentRange"] == f"bytes {a}-{b}/{len(whole)}", r["ContentRange"]
    assert s3.get_object(Bucket=bucket, Key=key, Range="bytes=-1500")["Body"].read() == whole[-1500:]
    assert s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={b2 - 5}-")["Body"].read() == whole[b2 - 5 :]
    # On disk: one file per listed part (the unlisted part 99 and the upload are gone).
    if before is not None:
        added = bucket_files(others) - before
        assert len(added) == len(parts), sorted(added)
        assert sorted(os.path.getsize(os.path.join(os.environ["OBJECTS_DIR"], f)) for f in added) == sorted(sizes), sorted(added)
        assert not any("/uploads/" in f or "/tmp/" in f for f in added), sorted(added)

    # CopyObject of a multipart object: a simple object with the MD5 ETag.
    c = s3.copy_object(Bucket=bucket, Key="mpx/copy", CopySource={"Bucket": bucket, "Key": key})
    assert c["CopyObjectResult"]["ETag"] == f'"{md5_hex(whole)}"', c
    assert s3.get_object(Bucket=bucket, Key="mpx/copy")["Body"].read() == whole

    # UploadPartCopy from ranges of a multipart object, across part boundaries.
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mpx/upc")["UploadId"]
    r1 = (b1 - 100, b1 - 100 + 5 * mb - 1)
    r2 = (b2 - 10, len(whole) - 1)
    e1 = s3.upload_part_copy(Bucket=bucket, Key="mpx/upc", UploadId=uid, PartNumber=1, CopySource=f"{bucket}/{key}", CopySourceRange=f"bytes={r1[0]}-{r1[1]}")["CopyPartResult"]["ETag"]
    e2 = s3.upload_part_copy(Bucket=bucket, Key="mpx/upc", UploadId=uid, PartNumber=2, CopySource=f"{bucket}/{key}", CopySourceRange=f"bytes={r2[0]}-{r2[1]}")["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mpx/upc", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    expect = whole[r1[0] : r1[1] + 1] + whole[r2[0] : r2[1] + 1]
    assert s3.get_object(Bucket=bucket, Key="mpx/upc")["Body"].read() == expect

    # Deleting a multipart object removes its part files.
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "mpx/upc"}, {"Key": "mpx/copy"}]})
    s3.delete_object(Bucket=bucket, Key=key)
    assert error_code(s3.head_object, Bucket=bucket, Key=key) in ("404", "NoSuchKey")
    if before is not None:
        assert bucket_files(others) == before, sorted(bucket_files(others) - before)

    # Aborting an upload removes its parts.
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mpx/aborted")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="mpx/aborted", UploadId=uid, PartNumber=1, Body=os.urandom(mb))
    if before is not None:
        assert len(bucket_files(others) - before) == 1
    s3.abort_multipart_upload(Bucket=bucket, Key="mpx/aborted", UploadId=uid)
    if before is not None:
        assert bucket_files(others) == before, sorted(bucket_files(others) - before)

    # Versioning: overwrite and delete a multipart object; older versions stay readable.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = upload(key, parts)["VersionId"]
    parts2 = [os.urandom(5 * mb), os.urandom(77)]
    v2 = upload(key, parts2)["VersionId"]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"".join(parts2)
    marker = s3.delete_object(Bucket=bucket, Key=key)
    assert marker["DeleteMarker"]
    assert error_code(s3.get_object, Bucket=bucket, Key=key) == "NoSuchKey"
    old = s3.get_object(Bucket=bucket, Key=key, VersionId=v1, Range=f"bytes={b1 - 3}-{b1 + 3}")["Body"].read()
    assert old == whole[b1 - 3 : b1 + 4]
    assert s3.get_object(Bucket=bucket, Key=key, VersionId=v1)["Body"].read() == whole
    assert s3.get_object(Bucket=bucket, Key=key, VersionId=v2)["Body"].read() == b"".join(parts2)
    for v in (v1, v2, marker["VersionId"]):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=v)
    if before is not None:
        assert bucket_files(others) == before, sorted(bucket_files(others) - before)
    s3.delete_bucket(Bucket=bucket)


@check
def large_multipart_200mib_with_checksum():
    size = 200 * 1024 * 1024
    chunk = 16 * 1024 * 1024
    with tempfile.TemporaryDirectory() as d:
        up_path, down_path = os.path.join(d, "up.bin"), os.path.join(d, "down.bin")
        sha, parts = hashlib.sha256(), []
        with open(up_path, "wb") as f:
            left = size
            while left:
                n = min(chunk, left)
                data = os.urandom(n)
                f.write(data)
                sha.update(data)
                parts.append(hashlib.md5(data).digest())
                left -= n
        cfg = TransferConfig(multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=4)
        s3.upload_file(up_path, BUCKET, "large/200MiB.bin", Config=cfg)
        head = s3.head_object(Bucket=BUCKET, Key="large/200MiB.bin")
        assert head["ContentLength"] == size
        expected = hashlib.md5(b"".join(parts)).hexdigest() + f"-{len(parts)}"
        assert head["ETag"] == f'"{expected}"', (head["ETag"], expected)
        s3.download_file(BUCKET, "large/200MiB.bin", down_path, Config=cfg)
        got = hashlib.sha256()
        with open(down_path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                got.update(block)
        assert got.hexdigest() == sha.hexdigest(), "the downloaded object differs from the upload"
    s3.delete_object(Bucket=BUCKET, Key="large/200MiB.bin")


@check
def presigned_urls():
    s3.put_object(Bucket=BUCKET, Key="presign/get.txt", Body=b"presigned body")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "presign/get.txt"}, ExpiresIn=300)
    status, _, body = http("GET", url)
    assert status == 200 and body == b"presigned body", (status, body)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "presign/put.txt"}, ExpiresIn=300)
    status, _, _ = http("PUT", put_url, body=b"uploaded by URL")
    assert status == 200, status
    assert s3.get_object(Bucket=BUCKET, Key="presign/put.txt")["Body"].read() == b"uploaded by URL"
    # Presigned with the legacy query signature (boto3's default for presigning without s3v4).
    v2 = client(os.environ["KEY_ID"], os.environ["SECRET"], signature_version="s3")
    v2_url = v2.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "presign/get.txt"}, ExpiresIn=300)
    assert "Signature=" in v2_url and "X-Amz-" not in v2_url, v2_url
    assert http("GET", v2_url)[:3:2] == (200, b"presigned body")
    # A tampered signature, a changed key and an expired URL are all refused.
    tampered = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    assert http("GET", tampered)[0] == 403
    assert http("GET", url.replace("presign/get.txt", "presign/put.txt"))[0] == 403
    short = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "presign/get.txt"}, ExpiresIn=1)
    time.sleep(2.5)
    status, _, body = http("GET", short)
    assert status == 403, (status, body)
    # No signature at all on a private bucket.
    assert http("GET", f"{ENDPOINT}/{BUCKET}/presign/get.txt")[0] == 403


@check
def wrong_credentials_are_rejected():
    wrong = client(os.environ["KEY_ID"], "x" * 40)
    assert error_code(wrong.list_objects_v2, Bucket=BUCKET) == "SignatureDoesNotMatch"
    assert error_code(wrong.put_object, Bucket=BUCKET, Key="nope", Body=b"x") == "SignatureDoesNotMatch"
    unknown = client("RKUNKNOWNUNKNOWN0000", "x" * 40)
    assert error_code(unknown.list_buckets) == "InvalidAccessKeyId"


@check
def read_only_key():
    assert ro.get_object(Bucket=BUCKET, Key="docs/hello.txt")["Body"].read() == b"hello, roost\n"
    assert ro.list_objects_v2(Bucket=BUCKET, Prefix="docs/")["KeyCount"] == 1
    assert error_code(ro.put_object, Bucket=BUCKET, Key="ro/denied", Body=b"x") == "AccessDenied"
    assert error_code(ro.delete_object, Bucket=BUCKET, Key="docs/hello.txt") == "AccessDenied"
    assert error_code(ro.create_multipart_upload, Bucket=BUCKET, Key="ro/mp") == "AccessDenied"
    assert error_code(ro.create_bucket, Bucket="ro-" + uuid.uuid4().hex[:8]) == "AccessDenied"
    assert error_code(ro.copy_object, Bucket=BUCKET, Key="ro/copy", CopySource=f"{BUCKET}/docs/hello.txt") == "AccessDenied"
    assert s3.get_object(Bucket=BUCKET, Key="docs/hello.txt")["Body"].read() == b"hello, roost\n"


@check
def another_users_key_has_no_access():
    assert BUCKET not in [b["Name"] for b in other.list_buckets().get("Buckets", [])]
    # Bob is in no project but his own: S3 CreateBucket (the default project) is refused.
    assert error_code(other.create_bucket, Bucket="bob-" + uuid.uuid4().hex[:8]) == "AccessDenied"
    assert error_code(other.get_object, Bucket=BUCKET, Key="docs/hello.txt") == "AccessDenied"
    assert error_code(other.list_objects_v2, Bucket=BUCKET) == "AccessDenied"
    assert error_code(other.put_object, Bucket=BUCKET, Key="intruder", Body=b"x") == "AccessDenied"
    assert error_code(other.delete_bucket, Bucket=BUCKET) == "AccessDenied"
    assert error_code(other.copy_object, Bucket=BUCKET, Key="x", CopySource=f"{BUCKET}/docs/hello.txt") == "AccessDenied"


@check
def public_read_policy_for_static_hosting():
    s3.put_object(Bucket=BUCKET, Key="site/index.html", Body=b"<h1>hi</h1>", ContentType="text/html")
    url = f"{ENDPOINT}/{BUCKET}/site/index.html"
    assert http("GET", url)[0] == 403
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}],
    }
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"]) == policy
    status, headers, body = http("GET", url)
    assert status == 200 and body == b"<h1>hi</h1>", status
    assert headers.get("content-type") == "text/html", headers
    assert http("HEAD", url)[0] == 200
    # Reading, not listing or writing.
    assert http("GET", f"{ENDPOINT}/{BUCKET}?list-type=2")[0] == 403
    assert http("PUT", f"{ENDPOINT}/{BUCKET}/site/evil", body=b"x")[0] == 403
    assert http("DELETE", url)[0] == 403
    s3.delete_bucket_policy(Bucket=BUCKET)
    assert error_code(s3.get_bucket_policy, Bucket=BUCKET) == "NoSuchBucketPolicy"
    assert http("GET", url)[0] == 403


@check
def cors_configuration():
    assert error_code(s3.get_bucket_cors, Bucket=BUCKET) == "NoSuchCORSConfiguration"
    rules = [{"AllowedOrigins": ["https://app.example"], "AllowedMethods": ["GET", "PUT"], "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600}]
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": rules})
    got = s3.get_bucket_cors(Bucket=BUCKET)["CORSRules"]
    assert got[0]["AllowedOrigins"] == ["https://app.example"] and got[0]["MaxAgeSeconds"] == 600, got
    url = f"{ENDPOINT}/{BUCKET}/docs/hello.txt"
    status, headers, _ = http("OPTIONS", url, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"})
    assert status == 200 and headers.get("access-control-allow-origin") == "https://app.example", (status, headers)
    assert "PUT" in headers.get("access-control-allow-methods", "")
    assert headers.get("access-control-max-age") == "600"
    status, headers, _ = http("OPTIONS", url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert status == 403 and "access-control-allow-origin" not in headers, (status, headers)
    presigned = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "docs/hello.txt"}, ExpiresIn=60)
    status, headers, _ = http("GET", presigned, headers={"Origin": "https://app.example"})
    assert status == 200 and headers.get("access-control-allow-origin") == "https://app.example", headers
    assert headers.get("access-control-expose-headers") == "ETag"
    s3.delete_bucket_cors(Bucket=BUCKET)
    assert error_code(s3.get_bucket_cors, Bucket=BUCKET) == "NoSuchCORSConfiguration"


@check
def aws_chunked_signed_streaming_upload():
    """PUT with STREAMING-AWS4-HMAC-SHA256-PAYLOAD (what the Java and Go SDKs send):
    each chunk signed, chained to the seed signature."""
    key_id, secret = os.environ["KEY_ID"], os.environ["SECRET"]
    chunks = [os.urandom(64 * 1024), os.urandom(64 * 1024), os.urandom(1000), b""]
    payload_len = sum(len(c) for c in chunks)
    host = urllib.parse.urlparse(ENDPOINT).netloc
    now = datetime.now(timezone.utc)
    amz_date, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{date}/{REGION}/s3/aws4_request"
    path = f"/{BUCKET}/chunked/object.bin"

    def sign(key, msg):
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    signing_key = sign(sign(sign(sign(("AWS4" + secret).encode(), date), REGION), "s3"), "aws4_request")
    chunk_meta = [len(f"{len(c):x};chunk-signature=") + 64 + 4 + len(c) for c in chunks]
    content_length = sum(chunk_meta)
    headers = {
        "host": host,
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-date": amz_date,
        "x-amz-decoded-content-length": str(payload_len),
        "content-encoding": "aws-chunked",
        "content-length": str(content_length),
    }
    signed = sorted(headers)
    canonical = "\n".join(["PUT", path, "", "".join(f"{h}:{headers[h]}\n" for h in signed), ";".join(signed), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    seed = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={';'.join(signed)}, Signature={seed}"
    body, prev = io.BytesIO(), seed
    empty_hash = hashlib.sha256(b"").hexdigest()
    for c in chunks:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, empty_hash, hashlib.sha256(c).hexdigest()])
        prev = hmac.new(signing_key, sts.encode(), hashlib.sha256).hexdigest()
        body.write(f"{len(c):x};chunk-signature={prev}\r\n".encode() + c + b"\r\n")
    data = body.getvalue()
    assert len(data) == content_length
    del headers["host"]
    status, _, resp = http("PUT", ENDPOINT + path, body=data, headers=headers)
    assert status == 200, (status, resp)
    got = s3.get_object(Bucket=BUCKET, Key="chunked/object.bin")["Body"].read()
    assert got == b"".join(chunks)
    # A chunk whose signature does not chain is refused, and nothing is stored.
    bad = data.replace(prev.encode(), b"0" * 64)
    headers["authorization"] = headers["authorization"]  # same seed, broken last chunk
    status, _, _ = http("PUT", ENDPOINT + f"/{BUCKET}/chunked/bad.bin", body=bad, headers=headers)
    assert status in (400, 403), status
    assert error_code(s3.head_object, Bucket=BUCKET, Key="chunked/bad.bin") == "404"


@check
def lifecycle_rules():
    day = float(os.environ.get("LIFECYCLE_DAY_SECONDS", "86400"))
    assert error_code(s3.get_bucket_lifecycle_configuration, Bucket=BUCKET) == "NoSuchLifecycleConfiguration"
    s3.put_bucket_lifecycle_configuration(
        Bucket=BUCKET,
        LifecycleConfiguration={
            "Rules": [
                {"ID": "expire-tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}},
                {"ID": "abort-uploads", "Status": "Enabled", "Filter": {"Prefix": ""}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
            ]
        },
    )
    rules = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert {r["ID"] for r in rules} == {"expire-tmp", "abort-uploads"}, rules
    if day > 30:
        print("  (lifecycle days are real days here: rules stored, not waited for)")
        s3.delete_bucket_lifecycle(Bucket=BUCKET)
        return
    before = bucket_files(set())
    s3.put_object(Bucket=BUCKET, Key="tmp/scratch", Body=b"old")
    s3.put_object(Bucket=BUCKET, Key="keep/this", Body=b"kept")
    # A multipart object expires with its part files.
    mp = s3.create_multipart_upload(Bucket=BUCKET, Key="tmp/multipart")["UploadId"]
    mp_parts = []
    for n, body in ((1, os.urandom(5 * 1024 * 1024)), (2, b"tail")):
        e = s3.upload_part(Bucket=BUCKET, Key="tmp/multipart", UploadId=mp, PartNumber=n, Body=body)["ETag"]
        mp_parts.append({"PartNumber": n, "ETag": e})
    s3.complete_multipart_upload(Bucket=BUCKET, Key="tmp/multipart", UploadId=mp, MultipartUpload={"Parts": mp_parts})
    uid = s3.create_multipart_upload(Bucket=BUCKET, Key="stale/upload")["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key="stale/upload", UploadId=uid, PartNumber=1, Body=b"stale part")
    deadline = time.time() + 10 * day + 20
    while time.time() < deadline:
        gone = s3.list_objects_v2(Bucket=BUCKET, Prefix="tmp/")["KeyCount"] == 0
        uploads = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]
        if gone and uid not in uploads:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the lifecycle job did not expire tmp/ or abort the stale upload")
    assert s3.get_object(Bucket=BUCKET, Key="keep/this")["Body"].read() == b"kept"
    if before is not None:
        # Only keep/this is left of what this check wrote: the expired objects' files, the
        # multipart object's parts and the aborted upload's part are gone.
        # (The files go just after the rows' commit: allow the job a moment.)
        settle = time.time() + 5
        while len(bucket_files(set()) - before) != 1 and time.time() < settle:
            time.sleep(0.1)
        added = bucket_files(set()) - before
        assert len(added) == 1, sorted(added)
    s3.delete_bucket_lifecycle(Bucket=BUCKET)
    assert error_code(s3.get_bucket_lifecycle_configuration, Bucket=BUCKET) == "NoSuchLifecycleConfiguration"


@check
def versioning():
    vb = BUCKET + "-v"
    s3.create_bucket(Bucket=vb)
    assert "Status" not in s3.get_bucket_versioning(Bucket=vb)
    s3.put_bucket_versioning(Bucket=vb, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=vb)["Status"] == "Enabled"
    v1 = s3.put_object(Bucket=vb, Key="doc", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=vb, Key="doc", Body=b"two")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2), (v1, v2)
    got = s3.get_object(Bucket=vb, Key="doc")
    assert got["Body"].read() == b"two" and got["VersionId"] == v2
    assert s3.get_object(Bucket=vb, Key="doc", VersionId=v1)["Body"].read() == b"one"
    assert s3.head_object(Bucket=vb, Key="doc", VersionId=v1)["ContentLength"] == 3
    vs = s3.list_object_versions(Bucket=vb)
    assert [(v["VersionId"], v["IsLatest"]) for v in vs["Versions"]] == [(v2, True), (v1, False)], vs["Versions"]
    # A delete without a version id leaves a delete marker; the versions stay.
    d = s3.delete_object(Bucket=vb, Key="doc")
    assert d["DeleteMarker"] and d["VersionId"], d
    marker = d["VersionId"]
    assert error_code(s3.get_object, Bucket=vb, Key="doc") == "NoSuchKey"
    assert s3.list_objects_v2(Bucket=vb)["KeyCount"] == 0
    vs = s3.list_object_versions(Bucket=vb)
    assert [(m["VersionId"], m["IsLatest"]) for m in vs["DeleteMarkers"]] == [(marker, True)], vs
    assert [v["VersionId"] for v in vs["Versions"]] == [v2, v1]
    assert s3.get_object(Bucket=vb, Key="doc", VersionId=v2)["Body"].read() == b"two"
    assert error_code(s3.get_object, Bucket=vb, Key="doc", VersionId=marker) == "MethodNotAllowed"
    # Deleting the marker restores the newest version; deleting a version is permanent.
    s3.delete_object(Bucket=vb, Key="doc", VersionId=marker)
    assert s3.get_object(Bucket=vb, Key="doc")["Body"].read() == b"two"
    s3.delete_object(Bucket=vb, Key="doc", VersionId=v2)
    assert s3.get_object(Bucket=vb, Key="doc")["Body"].read() == b"one"
    assert error_code(s3.get_object, Bucket=vb, Key="doc", VersionId=v2) == "NoSuchVersion"
    # Copy from an old version.
    v3 = s3.put_object(Bucket=vb, Key="doc", Body=b"three")["VersionId"]
    s3.copy_object(Bucket=vb, Key="restored", CopySource={"Bucket": vb, "Key": "doc", "VersionId": v1})
    assert s3.get_object(Bucket=vb, Key="restored")["Body"].read() == b"one"
    # Suspended: new writes are version "null" and replace each other; older versions stay.
    s3.put_bucket_versioning(Bucket=vb, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=vb)["Status"] == "Suspended"
    assert s3.put_object(Bucket=vb, Key="doc", Body=b"null-1").get("VersionId") == "null"
    s3.put_object(Bucket=vb, Key="doc", Body=b"null-2")
    ids = [v["VersionId"] for v in s3.list_object_versions(Bucket=vb, Prefix="doc")["Versions"]]
    assert ids == ["null", v3, v1], ids
    assert s3.get_object(Bucket=vb, Key="doc", VersionId="null")["Body"].read() == b"null-2"
    # The bucket is not empty until every version and marker is gone.
    s3.delete_object(Bucket=vb, Key="restored")
    assert error_code(s3.delete_bucket, Bucket=vb) == "BucketNotEmpty"
    vs = s3.list_object_versions(Bucket=vb)
    objs = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in vs.get("Versions", []) + vs.get("DeleteMarkers", [])]
    r = s3.delete_objects(Bucket=vb, Delete={"Objects": objs})
    assert len(r["Deleted"]) == len(objs) and not r.get("Errors"), r
    assert not s3.list_object_versions(Bucket=vb).get("Versions")
    s3.delete_bucket(Bucket=vb)


@check
def delete_bucket():
    assert error_code(s3.delete_bucket, Bucket=BUCKET) == "BucketNotEmpty"
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=BUCKET):
        objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objs:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": objs, "Quiet": True})
    for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=BUCKET, Key=u["Key"], UploadId=u["UploadId"])
    s3.delete_bucket(Bucket=BUCKET)
    assert BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def main():
    print(f"boto3 {boto3.__version__} against {ENDPOINT}, bucket {BUCKET}")
    for fn in CHECKS:
        if ONLY and fn.__name__ not in ONLY and fn.__name__ != "buckets":
            continue
        started = time.time()
        fn()
        print(f"ok {fn.__name__} ({time.time() - started:.1f}s)", flush=True)
    print("all checks passed")


if __name__ == "__main__":
    main()
