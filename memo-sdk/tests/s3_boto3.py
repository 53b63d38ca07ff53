"""boto3 against memo's S3 gateway.

Run by the Rust test `s3_boto3` (memo-sdk/tests/s3.rs), which starts the gateway over an
in-process network and passes AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
MEMO_S3_MAX_PUT (the gateway's size limit for one body). Exits non-zero on the first failed
check. Leaves bucket `keep` holding `same-1`, `same-2` and `copy`, all of the same 300 kB.
"""

import hashlib
import os
import socket
import sys
import urllib.parse

import boto3
import botocore.config
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
KEY = os.environ["AWS_ACCESS_KEY_ID"]
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]
MAX_PUT = int(os.environ["MEMO_S3_MAX_PUT"])
MIB = 1 << 20


def client(secret=SECRET):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=KEY,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def data(n, seed):
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def error_code(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{fn.__name__} succeeded, an error was expected")


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def signed_raw(method, path, body, send=None, query=""):
    """A SigV4-signed request over a raw socket; sends only `send` bytes of the body when given,
    then closes. Returns the response text (empty if the server closed first)."""
    url = f"{ENDPOINT}/{path}" + (f"?{query}" if query else "")
    req = AWSRequest(method=method, url=url, data=body)
    S3SigV4Auth(Credentials(KEY, SECRET), "s3", "us-east-1").add_auth(req)
    prepared = req.prepare()
    u = urllib.parse.urlsplit(url)
    head = f"{method} {u.path}{'?' + u.query if u.query else ''} HTTP/1.1\r\nHost: {u.netloc}\r\n"
    for k, v in prepared.headers.items():
        if k.lower() != "host":
            head += f"{k}: {v}\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(head.encode() + body[: len(body) if send is None else send])
    if send is not None:
        s.close()
        return ""
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    return got.decode(errors="replace")


def main():
    s3 = client()

    # Buckets.
    s3.create_bucket(Bucket="docs")
    s3.create_bucket(Bucket="keep")
    check(error_code(s3.create_bucket, Bucket="docs")[0] == "BucketAlreadyOwnedByYou", "create twice")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    check(names == ["docs", "keep"], f"list buckets {names}")
    s3.head_bucket(Bucket="docs")
    check(error_code(s3.head_bucket, Bucket="nope")[1] == 404, "head of an unknown bucket")
    s3.get_bucket_location(Bucket="docs")
    check(
        error_code(s3.put_object, Bucket="nope", Key="k", Body=b"x")[0] == "NoSuchBucket",
        "put into an unknown bucket",
    )

    # Put, get, ranged get, head, metadata.
    body = data(300_000, "one")
    put = s3.put_object(
        Bucket="docs", Key="a/one.bin", Body=body, ContentType="application/x-test",
        Metadata={"color": "blue"},
    )
    check(put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), "put ETag is the MD5")
    got = s3.get_object(Bucket="docs", Key="a/one.bin")
    check(got["Body"].read() == body, "get returns the bytes")
    check(got["ContentType"] == "application/x-test", "content type kept")
    check(got["Metadata"] == {"color": "blue"}, f"metadata kept {got['Metadata']}")
    r = s3.get_object(Bucket="docs", Key="a/one.bin", Range="bytes=1000-200999")
    check(r["Body"].read() == body[1000:201000], "ranged get")
    check(r["ContentRange"] == "bytes 1000-200999/300000", r["ContentRange"])
    r = s3.get_object(Bucket="docs", Key="a/one.bin", Range="bytes=-10")
    check(r["Body"].read() == body[-10:], "suffix range")
    check(
        error_code(s3.get_object, Bucket="docs", Key="a/one.bin", Range="bytes=400000-")[0]
        == "InvalidRange",
        "range past the end",
    )
    h = s3.head_object(Bucket="docs", Key="a/one.bin")
    check(h["ContentLength"] == 300_000 and h["ETag"] == put["ETag"], "head")
    check(h["LastModified"] is not None, "last modified")
    check(error_code(s3.head_object, Bucket="docs", Key="missing")[1] == 404, "head of a missing key")
    check(error_code(s3.get_object, Bucket="docs", Key="missing")[0] == "NoSuchKey", "get of a missing key")
    s3.put_object(Bucket="docs", Key="empty", Body=b"")
    check(s3.get_object(Bucket="docs", Key="empty")["Body"].read() == b"", "empty object")

    # Overwrite.
    s3.put_object(Bucket="docs", Key="a/two.txt", Body=b"first")
    s3.put_object(Bucket="docs", Key="a/two.txt", Body=b"second")
    check(s3.get_object(Bucket="docs", Key="a/two.txt")["Body"].read() == b"second", "overwrite")

    # Listing: prefix, delimiter, pages.
    for k in ["a/b/c.txt", "a/b/d.txt", "a/z.txt", "b.txt", "c/x.txt"]:
        s3.put_object(Bucket="docs", Key=k, Body=k.encode())
    l = s3.list_objects_v2(Bucket="docs", Prefix="a/", Delimiter="/")
    keys = [o["Key"] for o in l.get("Contents", [])]
    prefixes = [p["Prefix"] for p in l.get("CommonPrefixes", [])]
    check(keys == ["a/one.bin", "a/two.txt", "a/z.txt"], f"v2 keys {keys}")
    check(prefixes == ["a/b/"], f"v2 prefixes {prefixes}")
    l = s3.list_objects_v2(Bucket="docs", Delimiter="/")
    check([p["Prefix"] for p in l["CommonPrefixes"]] == ["a/", "c/"], "top-level prefixes")
    check([o["Key"] for o in l["Contents"]] == ["b.txt", "empty"], "top-level keys")
    seen, token = [], None
    while True:
        kw = {"Bucket": "docs", "MaxKeys": 2}
        if token:
            kw["ContinuationToken"] = token
        page = s3.list_objects_v2(**kw)
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    want = sorted(["a/b/c.txt", "a/b/d.txt", "a/one.bin", "a/two.txt", "a/z.txt", "b.txt", "c/x.txt", "empty"])
    check(seen == want, f"paged v2 listing {seen}")
    v1 = s3.list_objects(Bucket="docs", Prefix="a/b/")
    check([o["Key"] for o in v1["Contents"]] == ["a/b/c.txt", "a/b/d.txt"], "v1 listing")
    pages = s3.get_paginator("list_objects").paginate(Bucket="docs", PaginationConfig={"PageSize": 3})
    check([o["Key"] for p in pages for o in p.get("Contents", [])] == want, "paged v1 listing")

    odd = "odd/ sp+ace%20\u00e9&<x>.txt"
    s3.put_object(Bucket="docs", Key=odd, Body=b"odd")
    l = s3.list_objects_v2(Bucket="docs", Prefix="odd/")
    check([o["Key"] for o in l["Contents"]] == [odd], f"odd key listed {l['Contents']}")
    check(s3.get_object(Bucket="docs", Key=odd)["Body"].read() == b"odd", "odd key read")
    s3.delete_object(Bucket="docs", Key=odd)

    # Copy (server side), delete, delete many.
    c = s3.copy_object(Bucket="docs", Key="copy.bin", CopySource={"Bucket": "docs", "Key": "a/one.bin"})
    check(c["CopyObjectResult"]["ETag"] == put["ETag"], "copy keeps the ETag")
    got = s3.get_object(Bucket="docs", Key="copy.bin")
    check(got["Body"].read() == body and got["Metadata"] == {"color": "blue"}, "copy reads back")
    s3.delete_object(Bucket="docs", Key="a/one.bin")
    check(s3.get_object(Bucket="docs", Key="copy.bin")["Body"].read() == body, "copy outlives its source")
    check(error_code(s3.head_object, Bucket="docs", Key="a/one.bin")[1] == 404, "deleted")
    s3.delete_object(Bucket="docs", Key="never-there")
    res = s3.delete_objects(
        Bucket="docs",
        Delete={"Objects": [{"Key": k} for k in ["a/b/c.txt", "a/b/d.txt", "b.txt", "nothing"]]},
    )
    check(sorted(d["Key"] for d in res["Deleted"]) == ["a/b/c.txt", "a/b/d.txt", "b.txt", "nothing"], "delete many")
    check(not res.get("Errors"), "delete many: no errors")
    left = [o["Key"] for o in s3.list_objects_v2(Bucket="docs")["Contents"]]
    check(left == ["a/two.txt", "a/z.txt", "c/x.txt", "copy.bin", "empty"], f"left {left}")
    check(error_code(s3.delete_bucket, Bucket="docs")[0] == "BucketNotEmpty", "non-empty bucket kept")

    # Multipart: upload, list, complete.
    p1, p2, p3 = data(5 * MIB, "p1"), data(5 * MIB, "p2"), data(123_456, "p3")
    up = s3.create_multipart_upload(Bucket="docs", Key="big.bin", ContentType="video/x-test")
    uid = up["UploadId"]
    e1 = s3.upload_part(Bucket="docs", Key="big.bin", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    # Part 2 sent twice: the second replaces the first.
    s3.upload_part(Bucket="docs", Key="big.bin", UploadId=uid, PartNumber=2, Body=p3)
    e2 = s3.upload_part(Bucket="docs", Key="big.bin", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
    e3 = s3.upload_part(Bucket="docs", Key="big.bin", UploadId=uid, PartNumber=3, Body=p3)["ETag"]
    parts = s3.list_parts(Bucket="docs", Key="big.bin", UploadId=uid)["Parts"]
    check([(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MIB), (2, 5 * MIB), (3, 123_456)], "list parts")
    ups = s3.list_multipart_uploads(Bucket="docs")["Uploads"]
    check([u["UploadId"] for u in ups] == [uid], "list uploads")
    check(
        error_code(
            s3.complete_multipart_upload, Bucket="docs", Key="big.bin", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]},
        )[0] == "InvalidPartOrder",
        "parts out of order",
    )
    done = s3.complete_multipart_upload(
        Bucket="docs", Key="big.bin", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}, {"PartNumber": 3, "ETag": e3}]},
    )
    md5s = b"".join(hashlib.md5(p).digest() for p in (p1, p2, p3))
    check(done["ETag"] == '"%s-3"' % hashlib.md5(md5s).hexdigest(), "multipart ETag")
    whole = p1 + p2 + p3
    got = s3.get_object(Bucket="docs", Key="big.bin")
    check(got["Body"].read() == whole and got["ContentType"] == "video/x-test", "multipart object reads back")
    a, b = 5 * MIB - 100, 10 * MIB + 50
    r = s3.get_object(Bucket="docs", Key="big.bin", Range=f"bytes={a}-{b}")
    check(r["Body"].read() == whole[a : b + 1], "ranged get across parts")
    check(s3.list_multipart_uploads(Bucket="docs").get("Uploads", []) == [], "upload gone after complete")

    # UploadPartCopy and an aborted upload.
    up = s3.create_multipart_upload(Bucket="docs", Key="partcopy.bin")
    uid = up["UploadId"]
    pc = s3.upload_part_copy(
        Bucket="docs", Key="partcopy.bin", UploadId=uid, PartNumber=1,
        CopySource={"Bucket": "docs", "Key": "big.bin"}, CopySourceRange=f"bytes=0-{5 * MIB - 1}",
    )
    check(pc["CopyPartResult"]["ETag"] == e1, "upload part copy ETag")
    pc2 = s3.upload_part_copy(
        Bucket="docs", Key="partcopy.bin", UploadId=uid, PartNumber=2,
        CopySource={"Bucket": "docs", "Key": "copy.bin"},
    )
    s3.complete_multipart_upload(
        Bucket="docs", Key="partcopy.bin", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": pc["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": pc2["CopyPartResult"]["ETag"]}]},
    )
    check(s3.get_object(Bucket="docs", Key="partcopy.bin")["Body"].read() == p1 + body, "part copies read back")

    up = s3.create_multipart_upload(Bucket="docs", Key="aborted.bin")
    uid = up["UploadId"]
    s3.upload_part(Bucket="docs", Key="aborted.bin", UploadId=uid, PartNumber=1, Body=data(MIB, "ab"))
    s3.abort_multipart_upload(Bucket="docs", Key="aborted.bin", UploadId=uid)
    check(error_code(s3.list_parts, Bucket="docs", Key="aborted.bin", UploadId=uid)[0] == "NoSuchUpload", "aborted upload gone")
    check(error_code(s3.head_object, Bucket="docs", Key="aborted.bin")[1] == 404, "aborted upload left no object")

    # Bad input.
    up = s3.create_multipart_upload(Bucket="docs", Key="bad.bin")
    uid = up["UploadId"]
    check(
        error_code(s3.upload_part, Bucket="docs", Key="bad.bin", UploadId=uid, PartNumber=1, Body=data(MAX_PUT + 1, "big"))[0]
        == "EntityTooLarge",
        "oversized part",
    )
    # The gateway refuses an oversized body without reading it, and the connection it came on
    # is then closed; a pooled connection can be handed out before the client notices. Go on
    # with a fresh client, as a real one would after a connection error.
    s3 = client()
    small = s3.upload_part(Bucket="docs", Key="bad.bin", UploadId=uid, PartNumber=1, Body=b"tiny")["ETag"]
    s3.upload_part(Bucket="docs", Key="bad.bin", UploadId=uid, PartNumber=2, Body=b"tiny too")
    check(
        error_code(
            s3.complete_multipart_upload, Bucket="docs", Key="bad.bin", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": small}, {"PartNumber": 2}]},
        )[0] == "EntityTooSmall",
        "small middle part",
    )
    resp = signed_raw("POST", "docs/bad.bin", b"<CompleteMultipartUpload><Part>", query=f"uploadId={uid}")
    check(" 400 " in resp.split("\r\n")[0] and "MalformedXML" in resp, f"malformed XML: {resp[:200]}")
    s3.abort_multipart_upload(Bucket="docs", Key="bad.bin", UploadId=uid)
    check(
        error_code(client(secret="wrong" + SECRET[5:]).list_buckets)[0] == "SignatureDoesNotMatch",
        "bad signature",
    )
    check(
        error_code(s3.put_object, Bucket="docs", Key="too-big", Body=data(MAX_PUT + 1, "big"))[0] == "EntityTooLarge",
        "oversized put",
    )
    # A client that disconnects mid-upload leaves nothing.
    signed_raw("PUT", "docs/partial.bin", data(2 * MIB, "partial"), send=MIB // 2)
    check(error_code(s3.head_object, Bucket="docs", Key="partial.bin")[1] == 404, "disconnect left no object")

    # Dedup across keys: leave `keep` with three keys of the same bytes.
    same = data(300_000, "same")
    s3.put_object(Bucket="keep", Key="same-1", Body=same)
    s3.put_object(Bucket="keep", Key="same-2", Body=same)
    s3.copy_object(Bucket="keep", Key="copy", CopySource="keep/same-1")

    # Clean up docs entirely.
    for o in s3.list_objects_v2(Bucket="docs")["Contents"]:
        s3.delete_object(Bucket="docs", Key=o["Key"])
    s3.delete_bucket(Bucket="docs")
    check([b["Name"] for b in s3.list_buckets()["Buckets"]] == ["keep"], "bucket deleted")
    print("boto3: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", e, file=sys.stderr)
        sys.exit(1)
