"""Tests for verify_ledger.py: `python3 -m unittest discover -s tools` (standard library + `cryptography`).

Every fixture is built here, in Python, with helpers written independently of the code under test (a
reference event hash using hashlib.update and int.to_bytes, the recursive RFC 6962 MTH and PATH, signing with
`cryptography` directly). Known-answer vectors come from outside this project where they exist: the RFC 6962
roots and audit paths of the Certificate Transparency reference tests, the signed-note spec's example, and the
golang.org/x/mod/sumdb/note reference key and note. The fixed-seed vectors (FIXED_*) pin this project's formats
byte for byte, so the Rust implementation can assert the same strings.
"""

import base64
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import verify_ledger as vl

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "verify_ledger.py")
ORIGIN = "mcp-manager.local/ledger"
SEED = bytes(range(32))  # the fixed Ed25519 seed of the fixtures
OTHER_SEED = bytes(range(32, 64))
GENESIS = "0" * 64
TYPE_ED25519 = b"\x01"


# ------------------------------------------------------------------------------------------------------------
# Independent reference helpers (do not call verify_ledger)


def ref_event_hash(prev_hash, e):
    h = hashlib.sha256()
    h.update(prev_hash.encode("ascii"))

    def num(n):
        h.update(n.to_bytes(8, "big", signed=True))

    def text(s):
        b = s.encode("utf-8")
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)

    num(e["position"])
    text(e["stream_id"])
    num(e["stream_version"])
    text(e["event_type"])
    num(e["event_version"])
    text(e["payload"])
    text(e["metadata"])
    text(e["recorded_at"])
    return h.hexdigest()


def ref_leaf(data):
    return hashlib.sha256(b"\x00" + data).digest()


def ref_node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(leaves):
    """RFC 6962 section 2.1, literally."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return ref_leaf(leaves[0])
    k = _split(n)
    return ref_node(naive_mth(leaves[:k]), naive_mth(leaves[k:]))


def naive_path(m, leaves):
    """RFC 6962 section 2.1.1 PATH(m, D[n]), literally."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return naive_path(m, leaves[:k]) + [naive_mth(leaves[k:])]
    return naive_path(m - k, leaves[k:]) + [naive_mth(leaves[:k])]


def public_key_of(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def ref_key_id(name, public_key):
    h = hashlib.sha256()
    h.update(name.encode("utf-8"))
    h.update(b"\n")
    h.update(b"\x01")
    h.update(public_key)
    return h.digest()[:4]


def make_vkey(name, seed):
    pub = public_key_of(seed)
    return f"{name}+{ref_key_id(name, pub).hex()}+{base64.b64encode(TYPE_ED25519 + pub).decode()}"


def sign_note(text, name, seed):
    sig = Ed25519PrivateKey.from_private_bytes(seed).sign(text.encode("utf-8"))
    blob = base64.b64encode(ref_key_id(name, public_key_of(seed)) + sig).decode()
    return f"{text}\n\u2014 {name} {blob}\n"


def make_checkpoint(size, root, origin=ORIGIN, seed=SEED, key_name=None):
    text = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    return sign_note(text, key_name or origin, seed)


LEASE_A = "lse_" + "a1" * 20
LEASE_B = "lse_" + "b2" * 20


def make_log(n):
    """n chained events over a few streams; every third event (from position 1) is of lease A's stream."""
    events, versions, prev = [], {}, GENESIS
    for p in range(1, n + 1):
        if p % 3 == 1:
            stream, etype = f"lease-{LEASE_A}", ("lease_created" if p == 1 else "lease_renewed")
        elif p % 7 == 0:
            stream, etype = f"lease-{LEASE_B}", "lease_created"
        else:
            stream, etype = f"user-{p % 4 + 1}", "mcp_auth_success"
        versions[stream] = versions.get(stream, 0) + 1
        e = {
            "position": p,
            "stream_id": stream,
            "stream_version": versions[stream],
            "event_type": etype,
            "event_version": 1,
            "payload": json.dumps({"n": p, "note": "naïve ✓ 日本", "services": ["jira", "notion"]},
                                  ensure_ascii=False, separators=(",", ":")),
            "metadata": json.dumps({"actor": "user:1", "request_id": f"req-{p:08d}", "ip": "127.0.0.1"},
                                   separators=(",", ":")),
            "recorded_at": f"2025-11-08T23:{(p // 60) % 60:02d}:{p % 60:02d}.{p % 1000000:06d}Z",
            "prev_hash": prev,
        }
        e["hash"] = prev = ref_event_hash(prev, e)
        events.append(e)
    return events


def rechain(events, start=0):
    """Recomputes prev_hash/hash from index `start` on, so the chain is consistent again."""
    prev = events[start - 1]["hash"] if start else GENESIS
    for e in events[start:]:
        e["prev_hash"] = prev
        e["hash"] = prev = ref_event_hash(prev, e)
    return events


def leaves_of(events):
    return [bytes.fromhex(e["hash"]) for e in events]


def export_text(events):
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)


def proof_text(lease_id, index, path, checkpoint):
    lines = ["c2sp.org/tlog-proof@v1", "extra " + base64.b64encode(lease_id.encode()).decode(), f"index {index}"]
    lines += [base64.b64encode(h).decode() for h in path]
    return "\n".join(lines) + "\n\n" + checkpoint


def make_receipt(events, lease_id, size=None, seed=SEED):
    size = len(events) if size is None else size
    leaves = leaves_of(events[:size])
    checkpoint = make_checkpoint(size, naive_mth(leaves), seed=seed)
    items = [{"event": dict(e), "proof": proof_text(lease_id, e["position"] - 1,
                                                    naive_path(e["position"] - 1, leaves), checkpoint)}
             for e in events[:size] if e["stream_id"] == f"lease-{lease_id}"]
    return {"lease_id": lease_id, "vkey": make_vkey(ORIGIN, seed), "checkpoint": checkpoint, "events": items}


def flip_b64_byte(b64text, i):
    raw = bytearray(base64.b64decode(b64text))
    raw[i] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# ------------------------------------------------------------------------------------------------------------
# Known-answer vectors

# Certificate Transparency reference tests (merkle_tree_test.cc; also trillian, certificate-transparency-go).
CT_LEAVES = [bytes.fromhex(h) for h in
             ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (0-based leaf index, tree size, audit path)
CT_PATHS = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]

# c2sp.org/signed-note, "Verifier keys", Example.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7"
             "Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")

# golang.org/x/mod/sumdb/note, note_test.go.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = ("\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6Ry"
          "yBwJnAM=\n")

# This project's formats with the fixed seed bytes(range(32)) and origin mcp-manager.local/ledger: the key strings,
# the checkpoint of the 8 CT leaves, and the hash of the event in events/src/hash.rs's `sample("{}")`.
FIXED_PRIVATE_KEY = ("PRIVATE+KEY+mcp-manager.local/ledger+34ef9c70+"
                     "AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f")
FIXED_VKEY = "mcp-manager.local/ledger+34ef9c70+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
FIXED_CHECKPOINT = (
    "mcp-manager.local/ledger\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n"
    "\u2014 mcp-manager.local/ledger NO+ccJZeqxtTYUIcDp3FDWh9zRt9afSKk1cS67Ssyy0FBFWxox1gpPqoMscfeURy2taaUFb5mmOX6j7gK1oWx"
    "Y3iqw8=\n"
)
RUST_SAMPLE_EVENT = {
    "position": 1, "stream_id": "user-1", "stream_version": 1, "event_type": "user_registered",
    "event_version": 1, "payload": "{}", "metadata": "{}", "recorded_at": "2025-11-08T23:39:56.000000Z",
}
RUST_SAMPLE_HASH = "dfc21abc2231d9880e17216416f4a85bf53c92030961df6e35180570d6dee270"


# ------------------------------------------------------------------------------------------------------------


def run_cli(*args):
    out, err = io.StringIO(), io.StringIO()
    code = vl.main(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


class MerkleTests(unittest.TestCase):
    def test_rfc6962_known_roots(self):
        for n in range(0, 9):
            self.assertEqual(vl.merkle_root(CT_LEAVES[:n]).hex(), CT_ROOTS[n], f"size {n}")
            self.assertEqual(naive_mth(CT_LEAVES[:n]).hex(), CT_ROOTS[n], f"naive, size {n}")

    def test_streaming_root_equals_naive_mth_for_every_size_0_to_70(self):
        leaves = [hashlib.sha256(str(i).encode()).digest()[: i % 33] for i in range(70)]
        tree = vl.StreamingRoot()
        self.assertEqual(tree.root(), naive_mth([]))
        for n in range(1, 71):
            tree.append(leaves[n - 1])
            self.assertEqual(tree.root(), naive_mth(leaves[:n]), f"size {n}")
            self.assertLessEqual(len(tree.stack), n.bit_length())

    def test_rfc6962_known_audit_paths_verify(self):
        for index, size, path in CT_PATHS:
            path = [bytes.fromhex(h) for h in path]
            self.assertEqual(naive_path(index, CT_LEAVES[:size]), path, (index, size))
            root = bytes.fromhex(CT_ROOTS[size])
            self.assertTrue(vl.verify_inclusion(index, size, ref_leaf(CT_LEAVES[index]), path, root))

    def test_inclusion_for_every_leaf_of_every_size_to_40_and_tampering_fails(self):
        leaves = [bytes([i]) * (i % 5 + 1) for i in range(41)]
        for size in range(1, 41):
            root = naive_mth(leaves[:size])
            bigger_root = naive_mth(leaves[:size + 1])
            for index in range(size):
                path = naive_path(index, leaves[:size])
                leaf = ref_leaf(leaves[index])
                self.assertTrue(vl.verify_inclusion(index, size, leaf, path, root), (index, size))
                self.assertFalse(vl.verify_inclusion(index, size + 1, leaf, path, bigger_root))
                self.assertFalse(vl.verify_inclusion(index, size, ref_leaf(b"x"), path, root))
                self.assertFalse(vl.verify_inclusion(size, size, leaf, path, root))
                self.assertFalse(vl.verify_inclusion(index, size, leaf, path + [root], root))
                if path:
                    self.assertFalse(vl.verify_inclusion(index, size, leaf, path[:-1], root))
                    bad = list(path)
                    bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
                    self.assertFalse(vl.verify_inclusion(index, size, leaf, bad, root))
                    for other in range(size):
                        if other != index:
                            self.assertFalse(vl.verify_inclusion(other, size, leaf, path, root), (other, size))


class EventHashTests(unittest.TestCase):
    def test_rust_sample_event_vector(self):
        self.assertEqual(ref_event_hash(GENESIS, RUST_SAMPLE_EVENT), RUST_SAMPLE_HASH)
        e = RUST_SAMPLE_EVENT
        self.assertEqual(vl.event_hash_hex(GENESIS, e["position"], e["stream_id"], e["stream_version"],
                                           e["event_type"], e["event_version"], e["payload"], e["metadata"],
                                           e["recorded_at"]), RUST_SAMPLE_HASH)

    def test_matches_reference_on_unicode_empty_and_extreme_integers(self):
        cases = [
            dict(RUST_SAMPLE_EVENT),
            dict(RUST_SAMPLE_EVENT, stream_id="", event_type="", payload="", metadata="", recorded_at=""),
            dict(RUST_SAMPLE_EVENT, payload='{"s":"naïve ✓ 日本 \U0001f600"}', position=2**63 - 1,
                 stream_version=-(2**63), event_version=-1),
        ]
        for e in cases:
            want = ref_event_hash("ab" * 32, e)
            got = vl.event_hash_hex("ab" * 32, e["position"], e["stream_id"], e["stream_version"], e["event_type"],
                                    e["event_version"], e["payload"], e["metadata"], e["recorded_at"])
            self.assertEqual(got, want)

    def test_length_prefixes_keep_field_boundaries_apart(self):
        a = dict(RUST_SAMPLE_EVENT, stream_id="ab", metadata="c")
        b = dict(RUST_SAMPLE_EVENT, stream_id="a", metadata="bc")
        self.assertNotEqual(ref_event_hash(GENESIS, a), ref_event_hash(GENESIS, b))


class NoteTests(unittest.TestCase):
    def test_signed_note_spec_example(self):
        name, id_hex, key_b64 = SPEC_VKEY.split("+", 2)
        self.assertEqual(ref_key_id(name, base64.b64decode(key_b64)[1:]).hex(), id_hex)
        self.assertEqual(vl.open_note(SPEC_NOTE, vl.Verifier(SPEC_VKEY)), "This is an example message.\n")

    def test_go_reference_key_and_note(self):
        # The private key string (PRIVATE+KEY+<name>+<id>+base64(0x01 || seed)) gives the vkey's public key.
        _, _, name, id_hex, seed_b64 = GO_SKEY.split("+", 4)
        seed = base64.b64decode(seed_b64)
        self.assertEqual(seed[0], 1)
        self.assertEqual(make_vkey(name, seed[1:]), GO_VKEY)
        self.assertEqual(ref_key_id(name, public_key_of(seed[1:])).hex(), id_hex)
        self.assertEqual(vl.open_note(GO_TEXT + "\n" + GO_SIG, vl.Verifier(GO_VKEY)), GO_TEXT)
        with self.assertRaisesRegex(vl.VerifyError, "signature does not verify"):
            vl.open_note(GO_TEXT.replace("problem,", "problem;") + "\n" + GO_SIG, vl.Verifier(GO_VKEY))

    def test_fixed_seed_vectors(self):
        pub = public_key_of(SEED)
        key_id = ref_key_id(ORIGIN, pub)  # computed here, independently of verify_ledger.key_id
        self.assertEqual(FIXED_VKEY, f"{ORIGIN}+{key_id.hex()}+{base64.b64encode(TYPE_ED25519 + pub).decode()}")
        self.assertEqual(FIXED_PRIVATE_KEY,
                         f"PRIVATE+KEY+{ORIGIN}+{key_id.hex()}+{base64.b64encode(TYPE_ED25519 + SEED).decode()}")
        self.assertEqual(make_checkpoint(8, naive_mth(CT_LEAVES)), FIXED_CHECKPOINT)  # Ed25519 is deterministic
        v = vl.Verifier(FIXED_VKEY)
        self.assertEqual(v.key_id, key_id)
        cp = vl.parse_checkpoint(FIXED_CHECKPOINT, v)
        self.assertEqual((cp.origin, cp.size, cp.root.hex()), (ORIGIN, 8, CT_ROOTS[8]))

    def test_unknown_signatures_are_ignored_and_a_known_bad_one_rejects(self):
        text = f"{ORIGIN}\n8\n{base64.b64encode(naive_mth(CT_LEAVES)).decode()}\n"
        v = vl.Verifier(make_vkey(ORIGIN, SEED))
        good = sign_note(text, ORIGIN, SEED)
        witness = sign_note(text, "witness.example/w1", OTHER_SEED).split("\n\n", 1)[1]
        same_name_other_key = sign_note(text, ORIGIN, OTHER_SEED).split("\n\n", 1)[1]
        self.assertEqual(vl.parse_checkpoint(good + witness + same_name_other_key, v).size, 8)
        self.assertEqual(vl.parse_checkpoint(text + "\n" + witness + good.split("\n\n", 1)[1], v).size, 8)
        with self.assertRaisesRegex(vl.VerifyError, "no signature by key"):
            vl.parse_checkpoint(text + "\n" + witness, v)
        sig_line = good.split("\n\n", 1)[1]
        blob = sig_line.rstrip("\n").split(" ")[2]
        bad = sig_line.replace(blob, flip_b64_byte(blob, 10))
        with self.assertRaisesRegex(vl.VerifyError, "signature does not verify with key"):
            vl.parse_checkpoint(good + bad, v)

    def test_malformed_checkpoints_are_refused(self):
        v = vl.Verifier(make_vkey(ORIGIN, SEED))
        root = base64.b64encode(naive_mth(CT_LEAVES)).decode()
        cases = {
            "extension lines": f"{ORIGIN}\n8\n{root}\nextension\n",
            "leading zeros": f"{ORIGIN}\n08\n{root}\n",
            "not a decimal": f"{ORIGIN}\n+8\n{root}\n",
            "not valid base64": f"{ORIGIN}\n8\n{root.rstrip('=')}\n",
            "not canonical": f"{ORIGIN}\n8\n{root[:-2] + chr(ord(root[-2]) + 1) + '='}\n",
            "bytes, not 32": f"{ORIGIN}\n8\n{base64.b64encode(b'x' * 31).decode()}\n",
            "is not the key name": f"other.example/log\n8\n{root}\n",
            "needs 3": f"{ORIGIN}\n8\n",
        }
        for why, text in cases.items():
            with self.assertRaisesRegex(vl.VerifyError, why, msg=why):
                vl.parse_checkpoint(sign_note(text, ORIGIN, SEED), v)
        good = make_checkpoint(8, naive_mth(CT_LEAVES))
        for why, note in {
            "CRLF": good.replace("\n", "\r\n"),
            "extra trailing newline": good + "\n",
            "does not end with a newline": good[:-1],
            "no blank line": good.replace("\n\n", "\n"),
            "malformed signature line": good.replace("\u2014", "-"),
            "control character": good.replace(ORIGIN, ORIGIN + "\t"),
        }.items():
            with self.assertRaisesRegex(vl.VerifyError, why, msg=why):
                vl.parse_checkpoint(note, v)

    def test_vkey_parsing(self):
        self.assertEqual(vl.Verifier(FIXED_VKEY).name, ORIGIN)
        name, id_hex, key = FIXED_VKEY.split("+", 2)
        for bad in [f"{name}+{id_hex}", f"{name}+{id_hex.upper()}+{key}", f"{name}+00000000+{key}",
                    f"{name}+{id_hex}+{key[:-1]}", f"+{id_hex}+{key}", f"a b+{id_hex}+{key}",
                    f"{name}+{id_hex}+{base64.b64encode(bytes([2]) + public_key_of(SEED)).decode()}"]:
            with self.assertRaises(vl.UsageError, msg=bad):
                vl.Verifier(bad)


class CliTestCase(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = self._tmp.name
        self.vkey = make_vkey(ORIGIN, SEED)

    def tearDown(self):
        self._tmp.cleanup()

    def write(self, name, content):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    def export_files(self, events, size=None, checkpoint=None):
        size = len(events) if size is None else size
        if checkpoint is None:
            checkpoint = make_checkpoint(size, naive_mth(leaves_of(events[:size])))
        return self.write("events.jsonl", export_text(events)), self.write("checkpoint.txt", checkpoint)

    def verify_export(self, events, size=None, checkpoint=None, vkey=None):
        export, cp = self.export_files(events, size, checkpoint)
        return run_cli("--export", export, "--checkpoint", cp, "--vkey", vkey or self.vkey)

    def assertOk(self, result, contains=""):
        code, out, err = result
        self.assertEqual((code, err), (0, ""), out + err)
        self.assertEqual(out.count("\n"), 1, out)
        self.assertTrue(out.startswith("ok: "), out)
        self.assertIn(contains, out)

    def assertFails(self, result, message, code=1):
        got_code, out, err = result
        self.assertEqual(got_code, code, out + err)
        self.assertEqual(out, "")
        self.assertEqual(err.count("\n"), 1, err)
        self.assertIn(message, err)
        self.assertNotIn("Traceback", err)


class ExportTests(CliTestCase):
    def test_valid_logs_verify(self):
        for n in (1, 2, 3, 7, 8, 9, 300):
            events = make_log(n)
            root = base64.b64encode(naive_mth(leaves_of(events))).decode()
            self.assertOk(self.verify_export(events), f"ok: {n} events, checkpoint size {n}, root {root}")

    def test_empty_log_and_size_zero_checkpoint(self):
        self.assertOk(self.verify_export([]), "ok: 0 events, checkpoint size 0, root 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        self.assertOk(self.verify_export(make_log(4), size=0), "positions 1..4 chain-checked only")
        bad = make_checkpoint(0, hashlib.sha256(b"x").digest())
        self.assertFails(self.verify_export([], checkpoint=bad), "tree size 0: root mismatch")

    def test_streamed_root_for_every_prefix_of_every_export_to_33(self):
        # verify_export inlines the streaming Merkle code; check it against the naive MTH at every size.
        for n in range(0, 34):
            events = make_log(n)
            lines = [l.encode() for l in export_text(events).splitlines(keepends=True)]
            leaves = leaves_of(events)
            for size in range(0, n + 1):
                root = naive_mth(leaves[:size])
                cp = vl.Checkpoint(ORIGIN, size, root, "")
                self.assertTrue(vl.verify_export(lines, cp).startswith(f"ok: {n} events"), (n, size))
                if size:
                    cp = vl.Checkpoint(ORIGIN, size, naive_mth(leaves[:size - 1]), "")
                    with self.assertRaisesRegex(vl.VerifyError, f"tree size {size}: root mismatch"):
                        vl.verify_export(lines, cp)

    def test_checkpoint_smaller_than_export(self):
        events = make_log(9)
        self.assertOk(self.verify_export(events, size=5), "ok: 9 events, checkpoint size 5 covers positions 1..5")

    def test_payload_edited(self):
        events = make_log(9)
        events[4]["payload"] = events[4]["payload"].replace('"n":5', '"n":6')
        self.assertFails(self.verify_export(events, checkpoint=make_checkpoint(9, naive_mth(leaves_of(events)))),
                         "failed: position 5: hash does not match the event's contents")

    def test_metadata_and_recorded_at_and_integers_are_covered(self):
        for field, value in [("metadata", "{}"), ("recorded_at", "2025-11-08T23:39:56.000001Z"),
                             ("stream_version", 99), ("event_version", 2), ("stream_id", "user-9"),
                             ("event_type", "x")]:
            events = make_log(3)
            events[1][field] = value
            self.assertFails(self.verify_export(events), "position 2: hash does not match the event's contents")

    def test_event_deleted_in_the_middle(self):
        events = make_log(9)
        cp = make_checkpoint(9, naive_mth(leaves_of(events)))
        del events[3]
        self.assertFails(self.verify_export(events, checkpoint=cp),
                         "position 4: missing (the export jumps from position 3 to 5)")

    def test_event_deleted_and_renumbered_breaks_the_chain(self):
        events = make_log(9)
        cp = make_checkpoint(9, naive_mth(leaves_of(events)))
        del events[3]
        for e in events[3:]:
            e["position"] -= 1
        self.assertFails(self.verify_export(events, checkpoint=cp),
                         "position 4: prev_hash does not match the previous event's hash")

    def test_events_out_of_order(self):
        events = make_log(5)
        events[2], events[3] = events[3], events[2]
        self.assertFails(self.verify_export(events), "position 3: missing (the export jumps from position 2 to 4)")

    def test_tail_truncated(self):
        events = make_log(9)
        cp = make_checkpoint(9, naive_mth(leaves_of(events)))
        self.assertFails(self.verify_export(events[:7], checkpoint=cp),
                         "tree size 9: the checkpoint covers 9 events but the export holds only 7")

    def test_tail_rewritten_and_rechained(self):
        for n in (3, 8, 300):
            events = make_log(n)
            cp = make_checkpoint(n, naive_mth(leaves_of(events)))
            for e in events[-2:]:
                e["payload"] = '{"rewritten":true}'
            rechain(events, n - 2)
            self.assertFails(self.verify_export(events, checkpoint=cp), f"failed: tree size {n}: root mismatch")

    def test_signature_byte_flipped(self):
        events = make_log(8)
        cp = make_checkpoint(8, naive_mth(leaves_of(events)))
        text, sig_line = cp.split("\n\n")
        blob = sig_line.rstrip("\n").split(" ")[2]
        for i in (4, 20, 67):  # in the signature: R, R, S
            cp_bad = text + "\n\n" + sig_line.replace(blob, flip_b64_byte(blob, i))
            self.assertFails(self.verify_export(events, checkpoint=cp_bad),
                             "failed: checkpoint: signature does not verify with key " + "+".join(self.vkey.split("+")[:2]))

    def test_checkpoint_text_edited(self):
        events = make_log(8)
        cp = make_checkpoint(8, naive_mth(leaves_of(events))).replace("\n8\n", "\n7\n", 1)
        self.assertFails(self.verify_export(events, checkpoint=cp), "checkpoint: signature does not verify")

    def test_wrong_vkey(self):
        events = make_log(8)
        self.assertFails(self.verify_export(events, vkey=make_vkey(ORIGIN, OTHER_SEED)),
                         "failed: checkpoint: no signature by key mcp-manager.local/ledger+")
        self.assertFails(self.verify_export(events, vkey=make_vkey("other.example/log", SEED)),
                         "failed: checkpoint: no signature by key other.example/log+")

    def test_checkpoint_signed_by_the_right_key_for_another_origin(self):
        events = make_log(3)
        cp = make_checkpoint(3, naive_mth(leaves_of(events)), origin="other.example/log", key_name=ORIGIN)
        self.assertFails(self.verify_export(events, checkpoint=cp),
                         "checkpoint: origin 'other.example/log' is not the key name")

    def test_export_must_start_at_position_1(self):
        events = make_log(9)
        self.assertFails(self.verify_export(events[3:], size=0), "position 1: the export starts at position 4")

    def test_first_prev_hash_must_be_genesis(self):
        events = make_log(3)
        events[0]["prev_hash"] = "1" * 64
        rechain(events, 1)
        events[0]["hash"] = ref_event_hash("1" * 64, events[0])
        rechain(events, 1)
        self.assertFails(self.verify_export(events), "position 1: prev_hash is not the genesis value")

    def test_malformed_lines_are_reported_not_raised(self):
        events = make_log(3)
        good = export_text(events).splitlines(keepends=True)
        cp = make_checkpoint(3, naive_mth(leaves_of(events)))
        payload_object = dict(events[1], payload={"n": 2})
        missing = {k: v for k, v in events[1].items() if k != "hash"}
        cases = [
            ("not json\n", "line 2: not a JSON event object"),
            ("\n", "line 2: empty line"),
            ("[1, 2]\n", "line 2 (position 2): not a JSON object"),
            (json.dumps(payload_object) + "\n", "payload must be the stored JSON string"),
            (json.dumps(missing) + "\n", "member 'hash' is missing"),
            (json.dumps(dict(events[1], position=2.0)) + "\n", "position must be a JSON integer"),
            (json.dumps(dict(events[1], position=True)) + "\n", "position must be a JSON integer"),
            (json.dumps(dict(events[1], stream_version=2**63)) + "\n", "stream_version is out of the 64-bit range"),
            (json.dumps(dict(events[1], hash="XYZ")) + "\n", "position 2: hash is not 64 lowercase hex digits"),
            (json.dumps(dict(events[1], hash=events[1]["hash"].upper())) + "\n", "hash is not 64 lowercase hex"),
            (json.dumps(events[1])[:-1] + ', "hash": "' + events[1]["hash"] + '"}\n', "duplicate member 'hash'"),
            (json.dumps(dict(events[1], payload="\ud800")) + "\n", "payload is not valid Unicode text"),
            (json.dumps(events[1]) + " x\n", "line 2: not a JSON event object"),
            (json.dumps(dict(events[1], event_version=float("nan"))) + "\n", "line 2: not a JSON event object"),
        ]
        for line, message in cases:
            export = self.write("bad.jsonl", good[0] + line + good[2])
            cpf = self.write("cp.txt", cp)
            self.assertFails(run_cli("--export", export, "--checkpoint", cpf, "--vkey", self.vkey), message)
        export = self.write("bad.jsonl", good[0].encode() + b"\xff\xfe\n")
        self.assertFails(run_cli("--export", export, "--checkpoint", cpf, "--vkey", self.vkey),
                         "line 2: not valid UTF-8")

    def test_crlf_export_and_unknown_members_are_accepted(self):
        events = make_log(3)
        cp = make_checkpoint(3, naive_mth(leaves_of(events)))
        export = self.write("crlf.jsonl", "".join(json.dumps(dict(e, extra=1)) + "\r\n" for e in events))
        self.assertOk(run_cli("--export", export, "--checkpoint", self.write("cp.txt", cp), "--vkey", self.vkey))

    def test_vkey_from_file_at_file_and_json(self):
        export, cp = self.export_files(make_log(7))
        plain = self.write("vkey.txt", self.vkey + "\n")
        as_json = self.write("key.json", json.dumps({"origin": ORIGIN, "vkey": self.vkey}))
        for arg in ("@" + plain, plain, "@" + as_json, as_json):
            self.assertOk(run_cli("--export", export, "--checkpoint", cp, "--vkey", arg))

    def test_usage_errors_exit_2(self):
        export, cp = self.export_files(make_log(2))
        missing = os.path.join(self.dir, "nope")
        for args, message in [
            ((), "--vkey"),
            (("--export", export, "--vkey", self.vkey), "give --export FILE --checkpoint FILE, or --receipt FILE"),
            (("--receipt", export, "--export", export, "--checkpoint", cp, "--vkey", self.vkey), "cannot be combined"),
            (("--export", export, "--checkpoint", cp, "--vkey", "not-a-key"), "--vkey"),
            (("--export", export, "--checkpoint", cp, "--vkey", "@" + missing), "cannot read"),
            (("--export", missing, "--checkpoint", cp, "--vkey", self.vkey), "--export: cannot read"),
            (("--export", export, "--checkpoint", missing, "--vkey", self.vkey), "--checkpoint: cannot read"),
            (("--export", export, "--checkpoint", cp, "--vkey", self.vkey, "--bogus"), "unrecognized"),
        ]:
            self.assertFails(run_cli(*args), message, code=2)

    def test_real_process_exit_codes_and_no_traceback(self):
        export, cp = self.export_files(make_log(9))
        garbage = self.write("garbage.jsonl", b"\x00\x01{{{\n")
        runs = [
            ([export, cp, self.vkey], 0, "ok: 9 events"),
            ([garbage, cp, self.vkey], 1, "failed: line 1:"),
            ([export, cp, "junk+junk+junk"], 2, "usage error:"),
        ]
        for (e, c, k), code, text in runs:
            p = subprocess.run([sys.executable, SCRIPT, "--export", e, "--checkpoint", c, "--vkey", k],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, code, p.stdout + p.stderr)
            self.assertIn(text, p.stdout + p.stderr)
            self.assertNotIn("Traceback", p.stderr)
            self.assertEqual((p.stdout + p.stderr).count("\n"), 1)


class ReceiptTests(CliTestCase):
    def verify_receipt(self, receipt, vkey=None):
        path = self.write("receipt.json", json.dumps(receipt, ensure_ascii=False))
        return run_cli("--receipt", path, "--vkey", vkey or self.vkey)

    def test_valid_receipts_verify(self):
        for n in (1, 2, 3, 7, 8, 9, 300):
            receipt = make_receipt(make_log(n), LEASE_A)
            count = len(receipt["events"])
            self.assertOk(self.verify_receipt(receipt),
                          f"ok: lease {LEASE_A}: {count} events (stream versions 1..{count}")
        receipt = make_receipt(make_log(300), LEASE_B, size=250)
        self.assertOk(self.verify_receipt(receipt), "included in checkpoint size 250")

    def test_receipt_vkey_mismatch_is_only_informational(self):
        receipt = make_receipt(make_log(9), LEASE_A)
        receipt["vkey"] = make_vkey(ORIGIN, OTHER_SEED)
        self.assertOk(self.verify_receipt(receipt), "NOTE: the receipt's vkey differs")
        self.assertOk(self.verify_receipt(make_receipt(make_log(9), LEASE_A)), "the receipt's vkey matches")

    def test_proof_with_a_flipped_hash(self):
        receipt = make_receipt(make_log(300), LEASE_A)
        item = receipt["events"][5]
        lines = item["proof"].split("\n")
        lines[4] = flip_b64_byte(lines[4], 31)
        item["proof"] = "\n".join(lines)
        self.assertFails(self.verify_receipt(receipt),
                         "receipt event 6 (position 16): inclusion proof does not lead to the checkpoint's root")

    def test_proof_with_a_hash_missing_or_added(self):
        receipt = make_receipt(make_log(300), LEASE_A)
        lines = receipt["events"][1]["proof"].split("\n")
        receipt["events"][1]["proof"] = "\n".join(lines[:3] + lines[4:])
        self.assertFails(self.verify_receipt(receipt), "receipt event 2 (position 4): inclusion proof does not lead")
        receipt = make_receipt(make_log(300), LEASE_A)
        lines = receipt["events"][1]["proof"].split("\n")
        receipt["events"][1]["proof"] = "\n".join(lines[:4] + [lines[3]] + lines[4:])
        self.assertFails(self.verify_receipt(receipt), "receipt event 2 (position 4): inclusion proof does not lead")

    def test_event_of_another_stream(self):
        events = make_log(30)
        receipt = make_receipt(events, LEASE_A)
        other = make_receipt(events, LEASE_B)["events"][0]
        receipt["events"].insert(2, other)
        self.assertFails(self.verify_receipt(receipt),
                         f"receipt event 3 (position 14): stream_id 'lease-{LEASE_B}' is not this lease's stream")

    def test_event_edited(self):
        receipt = make_receipt(make_log(30), LEASE_A)
        receipt["events"][3]["event"]["payload"] = "{}"
        self.assertFails(self.verify_receipt(receipt),
                         "receipt event 4 (position 10): hash does not match the event's contents")

    def test_event_edited_and_rehashed_is_not_in_the_tree(self):
        receipt = make_receipt(make_log(30), LEASE_A)
        e = receipt["events"][3]["event"]
        e["payload"] = "{}"
        e["hash"] = ref_event_hash(e["prev_hash"], e)
        self.assertFails(self.verify_receipt(receipt), "receipt event 4 (position 10): inclusion proof does not lead")

    def test_event_left_out_or_reordered(self):
        receipt = make_receipt(make_log(30), LEASE_A)
        del receipt["events"][2]
        self.assertFails(self.verify_receipt(receipt), "receipt event 3 (position 10): stream_version is 4, expected 3")
        receipt = make_receipt(make_log(30), LEASE_A)
        receipt["events"][1], receipt["events"][2] = receipt["events"][2], receipt["events"][1]
        self.assertFails(self.verify_receipt(receipt), "receipt event 2 (position 7): stream_version is 3, expected 2")

    def test_proof_fields(self):
        def tamper(fn, message, k=2):
            receipt = make_receipt(make_log(30), LEASE_A)
            receipt["events"][k]["proof"] = fn(receipt["events"][k]["proof"], receipt)
            self.assertFails(self.verify_receipt(receipt), message)

        tamper(lambda p, r: p.replace("extra " + base64.b64encode(LEASE_A.encode()).decode(),
                                      "extra " + base64.b64encode(LEASE_B.encode()).decode()),
               "receipt event 3 (position 7): proof extra")
        tamper(lambda p, r: "\n".join(l for l in p.split("\n") if not l.startswith("extra ")),
               "proof has no extra line")
        tamper(lambda p, r: p.replace("index 6\n", "index 5\n"), "proof index 5 is not position - 1 = 6")
        tamper(lambda p, r: p.replace("index 6\n", "index 06\n"), "proof index: '06' is not a decimal number")
        tamper(lambda p, r: p.replace("index 6\n", ""), "proof has no 'index' line")
        tamper(lambda p, r: p.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"), "proof does not start")
        tamper(lambda p, r: p.split("\n\n")[0] + "\n\n" + make_checkpoint(30, hashlib.sha256(b"x").digest()),
               "the proof's checkpoint is not the receipt's checkpoint")
        tamper(lambda p, r: p.replace("\n\n", "\n"), "proof has no blank line")
        tamper(lambda p, r: p.replace("\n\n", "\nAAAA\n\n"), "proof hash 6 is 3 bytes, not 32")

    def test_receipt_checkpoint_problems(self):
        receipt = make_receipt(make_log(30), LEASE_A)
        self.assertFails(self.verify_receipt(receipt, vkey=make_vkey(ORIGIN, OTHER_SEED)),
                         "receipt checkpoint: no signature by key")
        receipt = make_receipt(make_log(30), LEASE_A, seed=OTHER_SEED)
        self.assertFails(self.verify_receipt(receipt), "(the receipt names a different vkey:")

    def test_event_beyond_the_checkpoint(self):
        events = make_log(30)
        receipt = make_receipt(events, LEASE_A, size=20)
        late = next(e for e in events[20:] if e["stream_id"] == f"lease-{LEASE_A}")
        receipt["events"].append({"event": late, "proof": proof_text(LEASE_A, late["position"] - 1, [],
                                                                     receipt["checkpoint"])})
        self.assertFails(self.verify_receipt(receipt), "not covered by the checkpoint (tree size 20)")

    def test_malformed_receipts(self):
        receipt = make_receipt(make_log(9), LEASE_A)
        for mutate, message in [
            (lambda r: r.pop("checkpoint"), "member 'checkpoint' is missing"),
            (lambda r: r.update(events=[]), "receipt: no events"),
            (lambda r: r.update(events={}), "member 'events' is missing or not a JSON array"),
            (lambda r: r["events"][0].pop("proof"), "no proof"),
            (lambda r: r["events"][0].update(event=[]), "not an object with an 'event' object"),
            (lambda r: r["events"][0]["event"].update(metadata={}), "metadata must be the stored JSON string"),
        ]:
            r = json.loads(json.dumps(receipt))
            mutate(r)
            self.assertFails(self.verify_receipt(r), message)
        self.assertFails(run_cli("--receipt", self.write("r.json", "{"), "--vkey", self.vkey),
                         "receipt: not valid JSON")
        self.assertFails(run_cli("--receipt", self.write("r.json", "[]"), "--vkey", self.vkey),
                         "receipt: not a JSON object")


if __name__ == "__main__":
    unittest.main()
