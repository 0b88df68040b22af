#!/usr/bin/env python3
"""A tiny Azure Blob client for the tests, independent of rpfs's C code
(Python's standard library only), used where Debian's azure-cli is missing
and for what az does slowly:

    azure_helper.py sas CONTAINER PERMISSIONS      print a container SAS
    azure_helper.py put CONTAINER BLOB FILE         upload FILE as BLOB
    azure_helper.py list CONTAINER [PREFIX]         print blob names
    azure_helper.py ls CONTAINER [PREFIX]           print "SIZE ETAG NAME" per blob
    azure_helper.py get CONTAINER BLOB              write the blob to stdout
    azure_helper.py delete CONTAINER BLOB           delete one blob
    azure_helper.py delete-container CONTAINER

The account, key and endpoint come from RPFS_AZURITE_CONNECTION_STRING.
"""
import base64
import datetime
import hashlib
import hmac
import os
import re
import sys
import urllib.parse
import urllib.request

VERSION = "2021-08-06"


def conn():
    cs = os.environ["RPFS_AZURITE_CONNECTION_STRING"]
    kv = dict(p.split("=", 1) for p in cs.split(";") if "=" in p)
    return kv["AccountName"], base64.b64decode(kv["AccountKey"]), kv["BlobEndpoint"].rstrip("/")


def sas(container, perms):
    account, key, _ = conn()
    expiry = (datetime.datetime.utcnow() + datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Service SAS string-to-sign, version 2020-12-06 and later.
    fields = [perms, "", expiry, "/blob/%s/%s" % (account, container), "", "", "http,https", VERSION,
              "c", "", "", "", "", "", "", ""]
    sig = base64.b64encode(hmac.new(key, "\n".join(fields).encode(), hashlib.sha256).digest()).decode()
    q = {"sv": VERSION, "sr": "c", "sp": perms, "se": expiry, "spr": "http,https", "sig": sig}
    return urllib.parse.urlencode(q)


def request(method, container, blob="", query=None, body=b"", headers=None):
    account, key, endpoint = conn()
    path = urllib.parse.urlparse(endpoint).path + "/" + container + ("/" + urllib.parse.quote(blob) if blob else "")
    query = query or {}
    h = {"x-ms-date": datetime.datetime.utcnow().strftime("%a, %d %b %Y %H:%M:%S GMT"),
         "x-ms-version": VERSION}
    h.update(headers or {})
    length = str(len(body)) if body else ""
    sts = "\n".join([method, "", "", length, "", h.get("Content-Type", ""), "", "", "", "", "", ""]) + "\n"
    sts += "".join("%s:%s\n" % (k, h[k]) for k in sorted(h) if k.startswith("x-ms-"))
    sts += "/" + account + path
    sts += "".join("\n%s:%s" % (k, query[k]) for k in sorted(query))
    sig = base64.b64encode(hmac.new(key, sts.encode(), hashlib.sha256).digest()).decode()
    h["Authorization"] = "SharedKey %s:%s" % (account, sig)
    url = endpoint + "/" + container + ("/" + urllib.parse.quote(blob) if blob else "")
    if query:
        url += "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url, data=body if method == "PUT" else None, method=method, headers=h)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def main():
    cmd = sys.argv[1]
    if cmd == "sas":
        print(sas(sys.argv[2], sys.argv[3]))
    elif cmd == "put":
        data = open(sys.argv[4], "rb").read()
        request("PUT", sys.argv[2], sys.argv[3], body=data,
                headers={"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"})
    elif cmd in ("list", "ls"):
        q = {"restype": "container", "comp": "list"}
        if len(sys.argv) > 3:
            q["prefix"] = sys.argv[3]
        marker = None
        while True:
            if marker:
                q["marker"] = marker
            x = request("GET", sys.argv[2], query=q).decode()
            for b in re.findall(r"<Blob>(.*?)</Blob>", x, re.S):
                n = re.search(r"<Name>(.*?)</Name>", b).group(1)
                n = n.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
                if cmd == "list":
                    print(n)
                else:
                    size = re.search(r"<Content-Length>(\d+)</Content-Length>", b).group(1)
                    etag = re.search(r"<Etag>(.*?)</Etag>", b).group(1).replace("&quot;", "")
                    print(size, etag, n)
            m = re.search(r"<NextMarker>(.+?)</NextMarker>", x)
            if not m:
                break
            marker = m.group(1)
    elif cmd == "get":
        sys.stdout.buffer.write(request("GET", sys.argv[2], sys.argv[3]))
    elif cmd == "delete":
        request("DELETE", sys.argv[2], sys.argv[3])
    elif cmd == "delete-container":
        request("DELETE", sys.argv[2], query={"restype": "container"})
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
