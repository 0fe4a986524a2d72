#!/usr/bin/env python3
"""Independent offline verifier for MCP Manager's event ledger.

For auditors who do not want to run the MCP Manager binary. Python 3.9+, the standard library, and the
`cryptography` package (for Ed25519) only. This file is the whole verifier; read it.

USAGE

    python3 verify_ledger.py --export FILE --checkpoint FILE --vkey VKEY
    python3 verify_ledger.py --receipt FILE --vkey VKEY

    VKEY is the verifier key string itself (`<name>+<key id>+<base64>`), or `@FILE` naming a file that holds
    it; a path to an existing file is accepted too. The file may hold the bare vkey or the JSON of
    `GET /api/audit/key` / `mcp-manager log-key generate` (its "vkey" member is used; nothing else is read).
    FILE may be `-` for standard input (one of them at most).

    Exit 0: verified; one line `ok: ...` on standard output.
    Exit 1: verification failed (or the input is malformed); one line `failed: <what>` on standard error,
            naming the first bad position, tree size, or receipt event.
    Exit 2: usage error (bad arguments, unreadable file, malformed vkey); one line on standard error.

Get the inputs from a server you trust *for availability only* (nothing it sends is trusted without checks):

    mcp-manager export --out events.jsonl --checkpoint-out checkpoint.txt   # or the audit API
    curl -H "Authorization: Bearer $AUDIT_TOKEN" .../api/audit/key          # -> the vkey; pin it out of band
    curl -H "Authorization: Bearer $LEASE_TOKEN" .../api/mcp/credentials/lease/<id>/receipt > receipt.json

The vkey is the trust anchor: obtain it out of band (not from the server you are auditing), and pin it.

WHAT IS CHECKED

--export / --checkpoint (a whole log, streamed: O(log n) memory, millions of events are fine)
  1. The checkpoint is a well-formed signed note (see FORMATS), its origin equals the vkey's key name, and it
     carries a valid Ed25519 signature by exactly that key (name and key id match; signatures by other keys
     are ignored, as signed-note requires; a signature by this key that fails to verify rejects the note).
  2. The export is JSON lines of event objects, starting at position 1 and contiguous (1, 2, 3, ...). An
     export made with `--after P` (P > 0) is refused: the checkpoint's root commits to every leaf from
     position 1, so it cannot be checked without them.
  3. Each event's `prev_hash` is the previous event's `hash` (64 ASCII zeros for position 1), and its `hash`
     is recomputed from its fields (formula below) and must be equal, character for character.
  4. The RFC 6962 Merkle Tree Hash over the first N events (N = the checkpoint's tree size) equals the
     checkpoint's root hash. N must not exceed the number of events in the export. Events after position N
     are checked as in 2-3 (the chain) but are not covered by that checkpoint.

--receipt (the receipt of one lease, `GET /api/mcp/credentials/lease/{id}/receipt`)
  1. The receipt's checkpoint: as 1 above.
  2. It holds at least one event; all events are of the stream `lease-<lease_id>` with stream_version 1, 2,
     3, ... in that order, at increasing positions.
  3. Each event's `hash` is recomputed from its fields (with its own `prev_hash`; the chain itself cannot be
     checked from a receipt, the Merkle inclusion proof is what binds the event to the log).
  4. Each proof is `c2sp.org/tlog-proof@v1` text whose `extra` is base64(lease_id), whose `index` is the
     event's position - 1, whose embedded checkpoint is byte for byte the receipt's checkpoint, and whose
     RFC 6962/9162 inclusion proof leads from the leaf hash SHA-256(0x00 || event hash bytes) at that index
     to the checkpoint's root.
  5. Informational: whether the receipt's own `vkey` member equals the vkey you gave (the given vkey is the
     one that is used; the receipt's is unauthenticated).
  What a receipt cannot prove: that the stream has no further events (e.g. a later `lease_revoked`) beyond
  those listed; use a full export for that.

FORMATS (CONTRACT.md, "Auditors: the verifiable ledger"; c2sp.org signed-note, tlog-checkpoint, tlog-proof)

  Base64 is standard base64 with padding (RFC 4648 section 4); this verifier accepts only the canonical
  encoding. be64(n) = 8-byte big-endian two's complement of the integer n (an i64).
  lp(s) = be64(number of UTF-8 bytes of s) || UTF-8 bytes of s.

  Event object (one JSON object per line in an export):
      {"position": int, "stream_id": str, "stream_version": int, "event_type": str, "event_version": int,
       "payload": str, "metadata": str, "recorded_at": str, "prev_hash": str, "hash": str}
  `payload` and `metadata` are the stored JSON *strings* (not objects). Other members are ignored (they are
  not covered by any hash).

  Event hash (hex, lowercase) =
      SHA-256( prev_hash as ASCII || be64(position) || lp(stream_id) || be64(stream_version) ||
               lp(event_type) || be64(event_version) || lp(payload) || lp(metadata) || lp(recorded_at) )
  The first event's prev_hash is "0" * 64.

  Merkle tree (RFC 6962 section 2.1, SHA-256): leaf i (0-based) is the event at position i + 1; its leaf data
  is the 32 bytes of the event's hash (hex-decoded). Leaf hash = SHA-256(0x00 || data); node hash =
  SHA-256(0x01 || left || right); MTH of the empty tree = SHA-256("").

  Verifier key (vkey):  <name>+<key id: 8 lowercase hex>+<base64(0x01 || 32-byte Ed25519 public key)>
      key id = SHA-256(name || 0x0A || 0x01 || public key)[:4]
  Checkpoint (a signed note), exactly:
      <origin>\\n<tree size, decimal, no leading zeros>\\n<base64 of the 32-byte root>\\n
      \\n
      — <key name> <base64(key id || 64-byte Ed25519 signature over the note text)>\\n     (one or more lines)
  The note text is the first three lines including their newlines; "—" is U+2014 (em dash). The note must be
  UTF-8 with no control characters other than newline; CONTRACT.md pins "no extension lines", so a fourth
  text line is refused.

  tlog-proof (c2sp.org/tlog-proof@v1), exactly:
      c2sp.org/tlog-proof@v1\\n
      extra <base64 of the lease id>\\n
      index <leaf index, decimal, no leading zeros>\\n
      <base64 hash>\\n ...  (zero or more: the RFC 6962 section 2.1.1 inclusion path, leaf's sibling first)
      \\n
      <the checkpoint, verbatim>

  Lease receipt (JSON):
      {"lease_id": str, "vkey": str, "checkpoint": "<checkpoint text>",
       "events": [{"event": <event object>, "proof": "<tlog-proof text>"}, ...]}
"""

import argparse
import base64
import binascii
import hashlib
import json
import os
import re
import struct
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # pragma: no cover - reported at run time, not at import
    Ed25519PublicKey = None
    InvalidSignature = Exception

GENESIS = "0" * 64
EMPTY_ROOT = hashlib.sha256(b"").digest()
PROOF_HEADER = "c2sp.org/tlog-proof@v1"
EM_DASH = "\u2014"
ED25519_TYPE = 0x01
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
MAX_NOTE_BYTES = 1 << 20  # a checkpoint note; the signed-note spec asks verifiers to bound it
MAX_RECEIPT_BYTES = 256 << 20

_sha256 = hashlib.sha256
_be64 = struct.Struct(">q").pack  # two's complement i64, as Rust's i64::to_be_bytes
_be64u = struct.Struct(">Q").pack  # lengths, as Rust's (len as u64).to_be_bytes
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]{0,18})\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_HEX8 = re.compile(r"[0-9a-f]{8}\Z")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_EVENT_FIELDS = (
    ("position", int),
    ("stream_id", str),
    ("stream_version", int),
    ("event_type", str),
    ("event_version", int),
    ("payload", str),
    ("metadata", str),
    ("recorded_at", str),
    ("prev_hash", str),
    ("hash", str),
)


class VerifyError(Exception):
    """Verification failed: exit 1 with this one-line message."""


class UsageError(Exception):
    """Bad invocation or unusable argument: exit 2 with this one-line message."""


# --------------------------------------------------------------------------------------------------------
# Encodings


def b64decode_strict(text, what):
    """Standard base64 with padding, canonical only (re-encoding gives back the same text)."""
    if not isinstance(text, str):
        raise VerifyError(f"{what}: not a string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise VerifyError(f"{what}: not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise VerifyError(f"{what}: not canonical padded base64")
    return raw


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


def parse_decimal(text, what):
    if not _DECIMAL.match(text):
        raise VerifyError(f"{what}: {text!r} is not a decimal number without leading zeros")
    value = int(text)
    if value > I64_MAX:
        raise VerifyError(f"{what}: {text} is out of range")
    return value


# --------------------------------------------------------------------------------------------------------
# Event hash


def event_hash_hex(prev_hash, position, stream_id, stream_version, event_type, event_version, payload,
                   metadata, recorded_at):
    """The event hash formula of CONTRACT.md (and events/src/hash.rs `chain_hash`), as lowercase hex."""
    sid = stream_id.encode("utf-8")
    etype = event_type.encode("utf-8")
    pay = payload.encode("utf-8")
    meta = metadata.encode("utf-8")
    rec = recorded_at.encode("utf-8")
    return _sha256(b"".join((
        prev_hash.encode("utf-8"),
        _be64(position),
        _be64u(len(sid)), sid,
        _be64(stream_version),
        _be64u(len(etype)), etype,
        _be64(event_version),
        _be64u(len(pay)), pay,
        _be64u(len(meta)), meta,
        _be64u(len(rec)), rec,
    ))).hexdigest()


def check_event_object(obj, where):
    """Type-checks an event object; returns its ten fields in _EVENT_FIELDS order."""
    if type(obj) is not dict:
        raise VerifyError(f"{where}: not a JSON object")
    values = []
    for name, kind in _EVENT_FIELDS:
        if name not in obj:
            raise VerifyError(f"{where}: member {name!r} is missing")
        value = obj[name]
        if type(value) is not kind:
            if name in ("payload", "metadata") and isinstance(value, (dict, list)):
                raise VerifyError(f"{where}: {name} must be the stored JSON string, not a decoded JSON value")
            raise VerifyError(f"{where}: {name} must be a JSON {'integer' if kind is int else 'string'}")
        if kind is int and not I64_MIN <= value <= I64_MAX:
            raise VerifyError(f"{where}: {name} is out of the 64-bit range")
        if kind is str:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise VerifyError(f"{where}: {name} is not valid Unicode text (lone surrogate escape)") from None
        values.append(value)
    return values


# --------------------------------------------------------------------------------------------------------
# Merkle trees (RFC 6962 section 2.1; RFC 9162 section 2.1.3.2 for inclusion proofs)


def leaf_hash(data):
    return _sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return _sha256(b"\x01" + left + right).digest()


class StreamingRoot:
    """RFC 6962 Merkle Tree Hash of leaves appended one at a time, in O(log n) memory.

    The stack holds the roots of the perfect subtrees the leaves so far decompose into, largest (leftmost)
    first; their sizes are the set bits of the leaf count. Appending merges equal-sized neighbours, like a
    binary counter. The MTH of the whole is the right fold H(s0, H(s1, ... H(s[k-2], s[k-1]))), which is
    exactly RFC 6962's split at the largest power of two smaller than n, applied recursively.
    """

    __slots__ = ("size", "stack")

    def __init__(self):
        self.size = 0
        self.stack = []

    def append_leaf_hash(self, h):
        stack = self.stack
        stack.append(h)
        self.size += 1
        n = self.size
        while not n & 1:
            right = stack.pop()
            stack[-1] = _sha256(b"\x01" + stack[-1] + right).digest()
            n >>= 1

    def append(self, data):
        self.append_leaf_hash(_sha256(b"\x00" + data).digest())

    def root(self):
        return _fold(self.stack)


def merkle_root(leaves):
    tree = StreamingRoot()
    for data in leaves:
        tree.append(data)
    return tree.root()


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 section 2.1.3.2. Returns True when `proof` leads from `leaf` (a leaf hash) to `root`."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# --------------------------------------------------------------------------------------------------------
# Keys, signed notes, checkpoints


def _valid_key_name(name):
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name, public_key):
    return _sha256(name.encode("utf-8") + b"\x0a" + bytes([ED25519_TYPE]) + public_key).digest()[:4]


class Verifier:
    """An Ed25519 verifier key: `<name>+<8 hex key id>+<base64(0x01 || 32-byte public key)>`."""

    def __init__(self, vkey):
        if Ed25519PublicKey is None:
            raise UsageError("the Python package 'cryptography' is required (pip install cryptography)")
        parts = vkey.split("+", 2)  # the name has no '+'; the base64 part may contain '+'
        if len(parts) != 3:
            raise UsageError("--vkey: expected <name>+<key id>+<base64 key>")
        name, id_hex, key_b64 = parts
        if not _valid_key_name(name):
            raise UsageError(f"--vkey: invalid key name {name!r}")
        if not _HEX8.match(id_hex):
            raise UsageError(f"--vkey: key id {id_hex!r} is not 8 lowercase hex digits")
        try:
            material = b64decode_strict(key_b64, "--vkey: key")
        except VerifyError as e:
            raise UsageError(str(e)) from None
        if len(material) != 33 or material[0] != ED25519_TYPE:
            raise UsageError("--vkey: not an Ed25519 key (expected base64 of 0x01 and 32 bytes)")
        public_key = material[1:]
        if key_id(name, public_key).hex() != id_hex:
            raise UsageError(f"--vkey: key id {id_hex} does not match the key (computed "
                             f"{key_id(name, public_key).hex()})")
        self.name = name
        self.key_id = bytes.fromhex(id_hex)
        self.public_key = public_key
        self.text = vkey
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @property
    def label(self):
        return f"{self.name}+{self.key_id.hex()}"

    def verify(self, signature, message):
        try:
            self._key.verify(signature, message)
            return True
        except InvalidSignature:
            return False


def open_note(note, verifier, what="checkpoint"):
    """Parses a signed note and verifies it with `verifier`. Returns the note text (str)."""
    if not isinstance(note, str):
        raise VerifyError(f"{what}: not a string")
    if len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise VerifyError(f"{what}: larger than {MAX_NOTE_BYTES} bytes")
    bad = _CONTROL.search(note)
    if bad:
        c = bad.group()
        hint = " (CRLF line endings?)" if c == "\r" else ""
        raise VerifyError(f"{what}: contains control character U+{ord(c):04X}{hint}")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in note):
        raise VerifyError(f"{what}: not valid UTF-8")
    if not note.endswith("\n"):
        raise VerifyError(f"{what}: does not end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise VerifyError(f"{what}: no blank line separating the text from the signatures")
    text, sig_block = note[:split + 1], note[split + 2:]
    if not sig_block:
        raise VerifyError(f"{what}: no signature lines after the last blank line (an extra trailing newline?)")
    found, seen = False, []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(EM_DASH + " "):
            raise VerifyError(f"{what}: malformed signature line {line[:60]!r}")
        fields = line[2:].split(" ")
        if len(fields) != 2 or not _valid_key_name(fields[0]):
            raise VerifyError(f"{what}: malformed signature line {line[:60]!r}")
        name, sig_b64 = fields
        sig = b64decode_strict(sig_b64, f"{what}: signature of {name}")
        if len(sig) < 5:
            raise VerifyError(f"{what}: signature of {name} is too short")
        seen.append(f"{name}+{sig[:4].hex()}")
        if name != verifier.name or sig[:4] != verifier.key_id:
            continue  # an unknown key: ignored, as signed-note requires
        if not verifier.verify(sig[4:], text.encode("utf-8")):
            raise VerifyError(f"{what}: signature does not verify with key {verifier.label}")
        found = True
    if not found:
        raise VerifyError(f"{what}: no signature by key {verifier.label} (signatures by: {', '.join(seen)})")
    return text


class Checkpoint:
    def __init__(self, origin, size, root, note):
        self.origin, self.size, self.root, self.note = origin, size, root, note


def parse_checkpoint(note, verifier, what="checkpoint"):
    """Verifies a checkpoint note with `verifier` and parses its text."""
    text = open_note(note, verifier, what)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise VerifyError(f"{what}: the note text has {len(lines)} lines, a checkpoint needs 3")
    if len(lines) > 3:
        raise VerifyError(f"{what}: has extension lines, which CONTRACT.md rules out")
    origin, size_text, root_text = lines
    if not origin:
        raise VerifyError(f"{what}: empty origin line")
    if origin != verifier.name:
        raise VerifyError(f"{what}: origin {origin!r} is not the key name {verifier.name!r}")
    size = parse_decimal(size_text, f"{what}: tree size")
    root = b64decode_strict(root_text, f"{what}: root hash")
    if len(root) != 32:
        raise VerifyError(f"{what}: root hash is {len(root)} bytes, not 32")
    return Checkpoint(origin, size, root, note)


def read_note_file(path):
    data = read_bytes(path, MAX_NOTE_BYTES + 1, "--checkpoint")
    if len(data) > MAX_NOTE_BYTES:
        raise VerifyError(f"checkpoint: larger than {MAX_NOTE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise VerifyError("checkpoint: not valid UTF-8") from None


# --------------------------------------------------------------------------------------------------------
# Export verification


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def _strict_object(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise ValueError(f"duplicate member {k!r}")
            seen.add(k)
    return obj


_decoder = json.JSONDecoder(object_pairs_hook=_strict_object, parse_constant=_reject_constant)


def loads_strict(text):
    """json.loads, refusing duplicate members and NaN/Infinity (ambiguous or not JSON)."""
    obj, end = _decoder.raw_decode(text, _skip_ws(text, 0))
    if _skip_ws(text, end) != len(text):
        raise ValueError("extra data after the JSON value")
    return obj


_WS = re.compile(r"[ \t\n\r]*")


def _skip_ws(text, i):
    return _WS.match(text, i).end()


def _line_error(raw, lineno):
    """Names what is wrong with an export line the fast path could not parse."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return VerifyError(f"line {lineno}: not valid UTF-8")
    if not line.strip():
        return VerifyError(f"line {lineno}: empty line")
    try:
        loads_strict(line)
    except RecursionError:
        return VerifyError(f"line {lineno}: nested too deeply")
    except ValueError as e:
        return VerifyError(f"line {lineno}: not a JSON event object ({e})")
    return VerifyError(f"line {lineno}: not a JSON event object")


def _fold(stack):
    """The MTH from the stack of perfect-subtree roots (see StreamingRoot)."""
    if not stack:
        return EMPTY_ROOT
    acc = stack[-1]
    for h in reversed(stack[:-1]):
        acc = _sha256(b"\x01" + h + acc).digest()
    return acc


def verify_export(lines, checkpoint):
    """Verifies an iterable of export lines (bytes) against a verified checkpoint. Returns a summary.

    This is the hot loop (millions of events), so StreamingRoot and the event hash are inlined here; the
    tests check it against both.
    """
    n = checkpoint.size
    if n == 0 and checkpoint.root != EMPTY_ROOT:
        raise VerifyError(f"tree size 0: root mismatch (the empty tree's root is {b64(EMPTY_ROOT)}, the "
                          f"checkpoint says {b64(checkpoint.root)})")
    scan = _decoder.scan_once  # the C scanner behind raw_decode, minus a Python frame per line
    sha256 = _sha256
    be64, be64u = _be64, _be64u
    stack = []  # roots of the perfect subtrees of the leaves so far, largest first
    prev = GENESIS
    position = 0
    lineno = 0
    for raw in lines:
        lineno += 1
        try:
            line = raw.decode("utf-8")
            obj, end = scan(line, 0)
            if end != len(line) and line[end:].strip(" \t\r\n"):
                raise ValueError
        except (ValueError, StopIteration, RecursionError):
            raise _line_error(raw, lineno) from None
        expected = position + 1
        # Fast path: exact types, no lone surrogates (encode raises; caught below for a precise message).
        try:
            pos = obj["position"]
            stream_id = obj["stream_id"].encode()
            stream_version = obj["stream_version"]
            event_type = obj["event_type"].encode()
            event_version = obj["event_version"]
            payload = obj["payload"].encode()
            metadata = obj["metadata"].encode()
            recorded_at = obj["recorded_at"].encode()
            prev_hash = obj["prev_hash"]
            hash_hex = obj["hash"]
            if (type(pos) is not int or type(stream_version) is not int or type(event_version) is not int
                    or type(prev_hash) is not str or type(hash_hex) is not str
                    or not I64_MIN <= stream_version <= I64_MAX or not I64_MIN <= event_version <= I64_MAX):
                raise TypeError
        except (KeyError, TypeError, AttributeError, UnicodeEncodeError):
            check_event_object(obj, f"line {lineno} (position {expected})")
            raise  # unreachable: check_event_object raises for anything the fast path refuses
        if pos != expected:
            if expected == 1:
                raise VerifyError(
                    f"position 1: the export starts at position {pos}; the checkpoint's root covers every "
                    f"event from position 1, so export the whole log (without --after)")
            if pos > expected:
                raise VerifyError(f"position {expected}: missing (the export jumps from position {position} "
                                  f"to {pos})")
            raise VerifyError(f"position {expected}: out of order (the export has position {pos} after "
                              f"{position})")
        if prev_hash != prev:
            if expected == 1:
                raise VerifyError("position 1: prev_hash is not the genesis value (64 zeros)")
            raise VerifyError(f"position {expected}: prev_hash does not match the previous event's hash")
        digest = sha256(b"".join((
            prev.encode(), be64(pos),
            be64u(len(stream_id)), stream_id,
            be64(stream_version),
            be64u(len(event_type)), event_type,
            be64(event_version),
            be64u(len(payload)), payload,
            be64u(len(metadata)), metadata,
            be64u(len(recorded_at)), recorded_at,
        ))).digest()
        if digest.hex() != hash_hex:
            if not _HEX64.match(hash_hex):
                raise VerifyError(f"position {expected}: hash is not 64 lowercase hex digits")
            raise VerifyError(f"position {expected}: hash does not match the event's contents")
        position = expected
        prev = hash_hex
        if position <= n:
            stack.append(sha256(b"\x00" + digest).digest())
            c = position
            while not c & 1:
                right = stack.pop()
                stack[-1] = sha256(b"\x01" + stack[-1] + right).digest()
                c >>= 1
            if position == n:
                root = _fold(stack)
                if root != checkpoint.root:
                    raise VerifyError(f"tree size {n}: root mismatch (the export's events 1..{n} give "
                                      f"{b64(root)}, the checkpoint says {b64(checkpoint.root)})")
    if position < n:
        held = f"only {position} (it ends at position {position})" if position else "none (it is empty)"
        raise VerifyError(f"tree size {n}: the checkpoint covers {n} events but the export holds {held}")
    if position == n:
        tail = f"checkpoint size {n}"
    else:
        tail = f"checkpoint size {n} covers positions 1..{n}, positions {n + 1}..{position} chain-checked only"
    return f"ok: {position} events, {tail}, root {b64(checkpoint.root)}, last hash {prev}"


# --------------------------------------------------------------------------------------------------------
# Receipt verification


def parse_proof(text, what):
    """Parses c2sp.org/tlog-proof@v1 text: returns (extra or None, index, [hashes], checkpoint note text)."""
    if not isinstance(text, str):
        raise VerifyError(f"{what}: proof is not a string")
    split = text.find("\n\n")
    if split < 0:
        raise VerifyError(f"{what}: proof has no blank line before its checkpoint")
    head, note = text[:split].split("\n"), text[split + 2:]
    if head[0] != PROOF_HEADER:
        raise VerifyError(f"{what}: proof does not start with {PROOF_HEADER!r}")
    i = 1
    extra = None
    if i < len(head) and head[i].startswith("extra "):
        extra = head[i][len("extra "):]
        b64decode_strict(extra, f"{what}: proof extra")
        i += 1
    if i >= len(head) or not head[i].startswith("index "):
        raise VerifyError(f"{what}: proof has no 'index' line")
    index = parse_decimal(head[i][len("index "):], f"{what}: proof index")
    hashes = []
    for j, line in enumerate(head[i + 1:], 1):
        h = b64decode_strict(line, f"{what}: proof hash {j}")
        if len(h) != 32:
            raise VerifyError(f"{what}: proof hash {j} is {len(h)} bytes, not 32")
        hashes.append(h)
    return extra, index, hashes, note


def verify_receipt(receipt, verifier):
    if type(receipt) is not dict:
        raise VerifyError("receipt: not a JSON object")
    for name, kind in (("lease_id", str), ("vkey", str), ("checkpoint", str), ("events", list)):
        if type(receipt.get(name)) is not kind:
            raise VerifyError(f"receipt: member {name!r} is missing or not a JSON "
                              f"{'array' if kind is list else 'string'}")
    lease_id = receipt["lease_id"]
    if not lease_id:
        raise VerifyError("receipt: empty lease_id")
    vkey_note = "the receipt's vkey matches" if receipt["vkey"] == verifier.text else \
        "NOTE: the receipt's vkey differs from the given one (the given one was used)"
    try:
        checkpoint = parse_checkpoint(receipt["checkpoint"], verifier, "receipt checkpoint")
    except VerifyError as e:
        if receipt["vkey"] != verifier.text:
            raise VerifyError(f"{e} (the receipt names a different vkey: {receipt['vkey'][:80]})") from None
        raise
    events = receipt["events"]
    if not events:
        raise VerifyError("receipt: no events")
    stream = f"lease-{lease_id}"
    try:
        expected_extra = b64(lease_id.encode("utf-8"))
    except UnicodeEncodeError:
        raise VerifyError("receipt: lease_id is not valid Unicode text") from None
    last_position = 0
    for i, item in enumerate(events, 1):
        what = f"receipt event {i}"
        if type(item) is not dict or type(item.get("event")) is not dict:
            raise VerifyError(f"{what}: not an object with an 'event' object")
        (position, stream_id, stream_version, event_type, event_version, payload, metadata, recorded_at,
         prev_hash, hash_hex) = check_event_object(item["event"], what)
        what = f"receipt event {i} (position {position})"
        if stream_id != stream:
            raise VerifyError(f"{what}: stream_id {stream_id!r} is not this lease's stream {stream!r}")
        if stream_version != i:
            raise VerifyError(f"{what}: stream_version is {stream_version}, expected {i} "
                              "(the events must be the stream's, in order, from version 1)")
        if position <= last_position:
            raise VerifyError(f"{what}: positions must increase (previous event at {last_position})")
        last_position = position
        if not _HEX64.match(prev_hash):
            raise VerifyError(f"{what}: prev_hash is not 64 lowercase hex digits")
        if position == 1 and prev_hash != GENESIS:
            raise VerifyError(f"{what}: prev_hash is not the genesis value (64 zeros)")
        recomputed = event_hash_hex(prev_hash, position, stream_id, stream_version, event_type,
                                    event_version, payload, metadata, recorded_at)
        if recomputed != hash_hex:
            if not _HEX64.match(hash_hex):
                raise VerifyError(f"{what}: hash is not 64 lowercase hex digits")
            raise VerifyError(f"{what}: hash does not match the event's contents")
        if "proof" not in item:
            raise VerifyError(f"{what}: no proof")
        extra, index, path, note = parse_proof(item["proof"], what)
        if extra is None:
            raise VerifyError(f"{what}: proof has no extra line (expected base64 of the lease id)")
        if extra != expected_extra:
            raise VerifyError(f"{what}: proof extra {extra!r} is not base64 of the lease id ({expected_extra})")
        if index != position - 1:
            raise VerifyError(f"{what}: proof index {index} is not position - 1 = {position - 1}")
        if note != checkpoint.note:
            raise VerifyError(f"{what}: the proof's checkpoint is not the receipt's checkpoint")
        if index >= checkpoint.size:
            raise VerifyError(f"{what}: not covered by the checkpoint (tree size {checkpoint.size})")
        leaf = leaf_hash(bytes.fromhex(recomputed))
        if not verify_inclusion(index, checkpoint.size, leaf, path, checkpoint.root):
            raise VerifyError(f"{what}: inclusion proof does not lead to the checkpoint's root "
                              f"(tree size {checkpoint.size})")
    return (f"ok: lease {lease_id}: {len(events)} events (stream versions 1..{len(events)}, positions "
            f"{events[0]['event']['position']}..{last_position}) included in checkpoint size {checkpoint.size}, "
            f"root {b64(checkpoint.root)}; {vkey_note}")


# --------------------------------------------------------------------------------------------------------
# Command line


def read_bytes(path, limit, what):
    try:
        if path == "-":
            return sys.stdin.buffer.read(limit)
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError as e:
        raise UsageError(f"{what}: cannot read {path}: {e.strerror or e}") from None


def load_vkey(arg):
    """The vkey string: the argument itself, `@FILE`, or a path to an existing file."""
    if arg.startswith("@"):
        return _vkey_from_file(arg[1:])
    if arg.count("+") >= 2 and not os.path.isfile(arg):
        return Verifier(arg.strip())
    if os.path.isfile(arg):
        return _vkey_from_file(arg)
    return Verifier(arg.strip())  # reports what is wrong with it


def _vkey_from_file(path):
    data = read_bytes(path, 1 << 16, "--vkey")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UsageError(f"--vkey: {path} is not UTF-8 text") from None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            raise UsageError(f"--vkey: {path} is not valid JSON") from None
        if type(obj) is not dict or type(obj.get("vkey")) is not str:
            raise UsageError(f"--vkey: {path} has no \"vkey\" member")
        text = obj["vkey"]
    return Verifier(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _export_lines(path):
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb", buffering=1 << 20)
    except OSError as e:
        raise UsageError(f"--export: cannot read {path}: {e.strerror or e}") from None


def run(argv):
    parser = _Parser(prog="verify_ledger.py", description="Offline verifier for MCP Manager's event ledger.",
                     epilog="Exit 0 verified, 1 failed, 2 usage error. What is checked, and every format, is "
                            "described at the top of verify_ledger.py.")
    parser.add_argument("--export", metavar="FILE", help="JSON lines of event objects, from position 1")
    parser.add_argument("--checkpoint", metavar="FILE", help="the signed checkpoint note for --export")
    parser.add_argument("--receipt", metavar="FILE", help="a lease receipt (JSON)")
    parser.add_argument("--vkey", metavar="VKEY", required=True, help="verifier key, @FILE, or a file path")
    args = parser.parse_args(argv)
    if args.receipt is not None:
        if args.export is not None or args.checkpoint is not None:
            raise UsageError("--receipt cannot be combined with --export/--checkpoint")
    elif args.export is None or args.checkpoint is None:
        raise UsageError("give --export FILE --checkpoint FILE, or --receipt FILE")
    if [args.export, args.checkpoint, args.receipt].count("-") > 1:
        raise UsageError("only one input can be standard input")
    verifier = load_vkey(args.vkey)

    if args.receipt is not None:
        data = read_bytes(args.receipt, MAX_RECEIPT_BYTES + 1, "--receipt")
        if len(data) > MAX_RECEIPT_BYTES:
            raise VerifyError(f"receipt: larger than {MAX_RECEIPT_BYTES} bytes")
        try:
            receipt = loads_strict(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise VerifyError("receipt: not valid UTF-8") from None
        except (ValueError, RecursionError) as e:
            raise VerifyError(f"receipt: not valid JSON ({e})") from None
        return verify_receipt(receipt, verifier)

    checkpoint = parse_checkpoint(read_note_file(args.checkpoint), verifier)
    lines = _export_lines(args.export)
    try:
        return verify_export(lines, checkpoint)
    except OSError as e:
        raise UsageError(f"--export: read error: {e.strerror or e}") from None
    finally:
        if lines is not sys.stdin.buffer:
            lines.close()


def main(argv=None, stdout=None, stderr=None):
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        summary = run(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"usage error: {e} (see --help)", file=stderr)
        return 2
    except VerifyError as e:
        print(f"failed: {e}", file=stderr)
        return 1
    except RecursionError:
        print("failed: input nested too deeply", file=stderr)
        return 1
    except MemoryError:
        print("failed: out of memory reading the input", file=stderr)
        return 1
    except KeyboardInterrupt:
        print("failed: interrupted", file=stderr)
        return 1
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except Exception as e:  # never a traceback: a bug here must still not look like success
        print(f"failed: internal error ({type(e).__name__}: {e})", file=stderr)
        return 1
    print(summary, file=stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
