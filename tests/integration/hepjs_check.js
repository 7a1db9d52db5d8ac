'use strict';
/*
 * hepjs_check.js - HEPv3 interoperability between heprouter's codec and
 * hep-js (sipcapture's Node.js HEP3 library), run by test_hepjs.sh.
 *
 * usage: node hepjs_check.js HEPCONV DATA_DIR WORK_DIR [a|b]
 *   HEPCONV   tests/integration/hepconv from a build dir
 *   DATA_DIR  tests/data/kamailio (v1/, v2/, v3/ with NNN.hep)
 *   WORK_DIR  scratch dir; hep-js must be installed in WORK_DIR/node_modules
 *   a, b      run only part (a) or (b) below (default: both)
 *
 * (a) heprouter encodes, hep-js decodes: every Kamailio capture (and a few
 *     synthetic inputs for what Kamailio does not send: IPv6, u16 capture
 *     id, vendor/unknown chunks) goes through `hepconv encode` with several
 *     override sets; hep-js must decode the v3 result to the fields
 *     `hepconv decode` reads from the input, plus the overrides.  The result
 *     is also walked chunk by chunk here (a third, independent reader).
 * (b) hep-js encodes, heprouter decodes: packets built by
 *     hep-js.encapsulate() from known field values must give the same
 *     fields through `hepconv decode`, and then pass (a) themselves.
 *
 * hep-js 1.0.22 quirks, found by reading its index.js; the checks compare
 * around them, and only around them:
 *   Q1 decapsulate() ignores chunks 0x0005/0x0006 (IPv6 addresses) and
 *      encapsulate() always writes 0x0003/0x0004, turning IPv6 text into
 *      0.0.0.0.  IPv6 addresses are read and written through hep-js's own
 *      vendor extension hook (vendor 0, types 5 and 6) instead, which
 *      handles them as UTF-8 text: only addresses whose 16 bytes are all
 *      < 0x80 survive, so the IPv6 test addresses are chosen that way.
 *   Q2 decapsulate() reads chunk 0x000c with readUInt32BE: a 2-byte capture
 *      id (allowed by HEP.md, sent by some agents) makes it throw, and it
 *      returns false for the whole packet.
 *   Q3 encapsulate() always writes chunk 0x0013; without hepNodeName its
 *      value is String(captureId).
 *   Q4 encapsulate() sizes string chunks by JS string length, not UTF-8
 *      byte length: non-ASCII payloads, node names or keys are truncated.
 *      Strings given to encapsulate() are ASCII.
 *   Q5 decapsulate() turns octet chunks into strings with
 *      Buffer.toString() (UTF-8, lossy for invalid sequences); expected
 *      values are converted the same way before comparing.
 *   Q6 decapsulate() ignores chunks 0x000d (keep-alive), 0x0010 (gzip
 *      payload), 0x0012 (VLAN), and dispatches on the type without looking
 *      at the vendor id (a vendor chunk of type 0x000f would replace the
 *      payload): synthetic vendor chunks use types it does not know.
 *   Q7 encapsulate() throws RangeError when the packet exceeds 65535 bytes
 *      (correct: the HEP3 length is a u16).
 */
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const PART = process.argv[5] || 'ab';
if (process.argv.length < 5 || process.argv.length > 6 || !['a', 'b', 'ab'].includes(PART)) {
    console.error('usage: node hepjs_check.js HEPCONV DATA_DIR WORK_DIR [a|b]');
    process.exit(2);
}
const HEPCONV = process.argv[2];
const DATA_DIR = process.argv[3];
const WORK_DIR = process.argv[4];
const hepjs = require(require.resolve('hep-js', { paths: [WORK_DIR] }));

const HEP3_HDR_LEN = 6;
const CHUNK_HDR_LEN = 6;
const HEP3_MAX_LEN = 65535;
const AF_INET = 2;
const AF_INET6 = 10;
/* Kamailio 5.6 siptrace v3 chunk order, and its overhead without 0x0011. */
const KAMAILIO_V3_ORDER = [1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 15];
const KAMAILIO_V3_OVERHEAD = 99;
const CHUNK = {
    FAMILY: 1, IP_PROTO: 2, SRC_IP4: 3, DST_IP4: 4, SRC_IP6: 5, DST_IP6: 6,
    SRC_PORT: 7, DST_PORT: 8, TS_SEC: 9, TS_USEC: 10, PROTO_TYPE: 11,
    CAPTURE_ID: 12, KEEPALIVE: 13, AUTH_KEY: 14, PAYLOAD: 15, PAYLOAD_GZ: 16,
    CORRELATION_ID: 17, VLAN: 18, NODE_NAME: 19,
};
/* Override option -> the hepconv JSON field and chunk type it sets. */
const BYTES_OVERRIDES = [
    ['node-name', 'node_name', CHUNK.NODE_NAME],
    ['auth-key', 'auth_key', CHUNK.AUTH_KEY],
    ['correlation-id', 'correlation_id', CHUNK.CORRELATION_ID],
];

/* Q1: hep-js reads/writes IPv6 address chunks only as extensions. */
hepjs.addVendorExtensions({
    0: {
        [CHUNK.SRC_IP6]: { keyName: 'srcIp6' },
        [CHUNK.DST_IP6]: { keyName: 'dstIp6' },
    },
});

let checks = 0;
const mismatches = [];
const quirksSeen = new Set();

const SHOW_MAX = 160;    /* characters of a value shown in a mismatch line */

function show(v) {
    const t = v === undefined ? 'undefined' : JSON.stringify(v);
    return t.length > SHOW_MAX ? `${t.slice(0, SHOW_MAX)}...(${t.length} chars)` : t;
}

function isPlainObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/* Key-by-key differences of two objects (nested one level for rcinfo). */
function differences(expected, got, prefix = '') {
    const out = [];
    for (const k of new Set([...Object.keys(expected), ...Object.keys(got)])) {
        const e = expected[k];
        const g = got[k];
        if (isPlainObject(e) && isPlainObject(g)) {
            out.push(...differences(e, g, `${prefix}${k}.`));
        } else if (JSON.stringify(e) !== JSON.stringify(g)) {
            out.push(`${prefix}${k}: expected ${show(e)}, got ${show(g)}`);
        }
    }
    return out;
}

function mismatch(ctx, what, expected, got) {
    mismatches.push({ ctx, what, expected, got });
    if (isPlainObject(expected) && isPlainObject(got)) {
        console.log(`MISMATCH ${ctx}: ${what}:`);
        for (const line of differences(expected, got)) console.log(`    ${line}`);
    } else {
        console.log(`MISMATCH ${ctx}: ${what}: expected ${show(expected)}, got ${show(got)}`);
    }
}

function same(ctx, what, expected, got) {
    checks++;
    if (JSON.stringify(expected) !== JSON.stringify(got)) {
        mismatch(ctx, what, expected, got);
        return false;
    }
    return true;
}

function quirk(name) {
    quirksSeen.add(name);
}

/* ---- hepconv ---- */

function hepconvDecode(file) {
    const r = spawnSync(HEPCONV, ['decode', file], { encoding: 'utf8' });
    if (r.error) throw r.error;
    const lines = r.stdout.split('\n').filter((l) => l.length > 0);
    if (lines.length !== 1) {
        throw new Error(`hepconv decode ${file}: expected one JSON line, got ` +
                        `${JSON.stringify(r.stdout)} (stderr ${r.stderr})`);
    }
    const d = JSON.parse(lines[0]);
    if ((r.status === 0) !== !('error' in d)) {
        throw new Error(`hepconv decode ${file}: exit ${r.status} disagrees ` +
                        `with ${lines[0].slice(0, 200)}`);
    }
    return d;
}

/* Runs hepconv encode; returns { status, stderr }. */
function hepconvEncode(input, output, args) {
    const r = spawnSync(HEPCONV, ['encode', ...args, input, output],
                        { encoding: 'utf8' });
    if (r.error) throw r.error;
    return { status: r.status, stderr: r.stderr.trim() };
}

/* ---- bytes and addresses ---- */

/* hepconv prints octet fields as latin1 strings: back to bytes. */
function latin1Bytes(s) {
    return Buffer.from(s, 'latin1');
}

/* Q5: what hep-js returns for an octet field. */
function asHepjsString(bytes) {
    return bytes.toString('utf8');
}

/* IPv6 text (as inet_ntop prints it) to 16 bytes. */
function ip6Bytes(text) {
    let head = text;
    let tail = '';
    const dbl = text.indexOf('::');
    if (dbl >= 0) {
        head = text.slice(0, dbl);
        tail = text.slice(dbl + 2);
    }
    const groups = (part) => {
        if (part === '') return [];
        const out = [];
        for (const g of part.split(':')) {
            if (g.includes('.')) {
                const q = g.split('.').map(Number);
                out.push((q[0] << 8) | q[1], (q[2] << 8) | q[3]);
            } else {
                out.push(parseInt(g, 16));
            }
        }
        return out;
    };
    const h = groups(head);
    const t = groups(tail);
    const fill = dbl >= 0 ? 8 - h.length - t.length : 0;
    const all = [...h, ...new Array(fill).fill(0), ...t];
    if (all.length !== 8 || all.some((g) => !(g >= 0 && g <= 0xffff))) {
        throw new Error(`bad IPv6 text ${text}`);
    }
    const b = Buffer.alloc(16);
    all.forEach((g, i) => b.writeUInt16BE(g, 2 * i));
    return b;
}

function isIp6(text) {
    return text.includes(':');
}

/* ---- an independent HEP3 reader ---- */

/* Walks a HEP3 buffer; returns { chunks: [{vendor, type, raw, value}] } or { error }. */
function walk(buf) {
    if (buf.length < HEP3_HDR_LEN || buf.toString('latin1', 0, 4) !== 'HEP3') {
        return { error: 'no HEP3 magic' };
    }
    if (buf.readUInt16BE(4) !== buf.length) {
        return { error: `total length ${buf.readUInt16BE(4)} != size ${buf.length}` };
    }
    const chunks = [];
    let pos = HEP3_HDR_LEN;
    while (pos < buf.length) {
        if (buf.length - pos < CHUNK_HDR_LEN) return { error: `trailing ${buf.length - pos} bytes` };
        const len = buf.readUInt16BE(pos + 4);
        if (len < CHUNK_HDR_LEN || pos + len > buf.length) {
            return { error: `chunk at ${pos} has length ${len}` };
        }
        chunks.push({
            vendor: buf.readUInt16BE(pos),
            type: buf.readUInt16BE(pos + 2),
            raw: buf.subarray(pos, pos + len),
            value: buf.subarray(pos + CHUNK_HDR_LEN, pos + len),
        });
        pos += len;
    }
    return { chunks };
}

/* ---- expected field sets ---- */

/* The fields of a hepconv decode line that describe the packet's content. */
function fields(d) {
    const f = { ...d };
    for (const k of ['file', 'len', 'chunks', 'version']) delete f[k];
    return f;
}

/*
 * What `hepconv decode` must say about hep_encode(input, overrides):
 * the input's fields, capture id widened to u32, overrides applied.
 */
function expectedAfterEncode(input, ov) {
    const e = fields(input);
    if (input.version !== 3 && 'capture_id' in e) e.capture_id_len = 4;
    if ('capture-id' in ov) {
        e.capture_id = Number(ov['capture-id']);
        e.capture_id_len = 4;
    }
    if ('time' in ov) {
        const [sec, usec] = ov.time.split('.');
        e.ts_sec = Number(sec);
        e.ts_usec = usec === undefined ? 0 : Number(usec);
    }
    for (const [opt, key] of BYTES_OVERRIDES) {
        if (!(opt in ov)) continue;
        if (ov[opt] === '') {
            delete e[key];
        } else {
            e[key] = Buffer.from(ov[opt], 'utf8').toString('latin1');
        }
    }
    return canonical(e);
}

/* Orders keys the way hepconv prints them, so JSON texts compare. */
const FIELD_ORDER = ['family', 'ip_proto', 'src', 'dst', 'sport', 'dport', 'ts_sec',
    'ts_usec', 'proto_type', 'capture_id', 'capture_id_len', 'keepalive', 'vlan',
    'auth_key', 'correlation_id', 'node_name', 'compressed', 'payload_len',
    'payload_hex'];

function canonical(f) {
    const out = {};
    for (const k of FIELD_ORDER) if (k in f) out[k] = f[k];
    for (const k of Object.keys(f).sort()) if (!(k in out)) out[k] = f[k];
    return out;
}

/* What hep-js decapsulate() must return for a packet with fields f. */
function hepjsExpected(f, walked) {
    const r = {};
    if ('family' in f) r.protocolFamily = f.family;
    if ('ip_proto' in f) r.protocol = f.ip_proto;
    for (const [key, v4key, v6key] of [['src', 'srcIp', 'srcIp6'], ['dst', 'dstIp', 'dstIp6']]) {
        if (!(key in f)) continue;
        if (isIp6(f[key])) {
            quirk('Q1');
            r[v6key] = asHepjsString(ip6Bytes(f[key]));
        } else {
            r[v4key] = f[key];
        }
    }
    if ('sport' in f) r.srcPort = f.sport;
    if ('dport' in f) r.dstPort = f.dport;
    if ('ts_sec' in f) r.timeSeconds = f.ts_sec;
    /* timeUseconds only when the chunk is there (ts_usec then is its value). */
    if (walked.some((c) => c.vendor === 0 && c.type === CHUNK.TS_USEC)) {
        r.timeUseconds = f.ts_usec;
    }
    if ('proto_type' in f) r.payloadType = f.proto_type;
    if ('capture_id' in f) r.captureId = f.capture_id;
    if ('auth_key' in f) r.capturePass = asHepjsString(latin1Bytes(f.auth_key));
    if ('correlation_id' in f) r.correlation_id = asHepjsString(latin1Bytes(f.correlation_id));
    if ('node_name' in f) r.hepNodeName = asHepjsString(latin1Bytes(f.node_name));
    for (const t of [CHUNK.KEEPALIVE, CHUNK.VLAN, CHUNK.PAYLOAD_GZ]) {
        if (walked.some((c) => c.vendor === 0 && c.type === t)) quirk('Q6');
    }
    const out = { rcinfo: canonicalRcinfo(r) };
    if ('payload_hex' in f && !f.compressed) {
        out.payload = asHepjsString(Buffer.from(f.payload_hex, 'hex'));
    }
    return out;
}

const RCINFO_ORDER = ['protocolFamily', 'protocol', 'srcIp', 'dstIp', 'srcIp6', 'dstIp6',
    'srcPort', 'dstPort', 'timeSeconds', 'timeUseconds', 'payloadType', 'captureId',
    'capturePass', 'correlation_id', 'hepNodeName'];

function canonicalRcinfo(r) {
    const out = {};
    for (const k of RCINFO_ORDER) if (k in r) out[k] = r[k];
    for (const k of Object.keys(r).sort()) if (!(k in out)) out[k] = r[k];
    return out;
}

function hepjsDecoded(buf) {
    const d = hepjs.decapsulate(buf);
    if (!d || typeof d !== 'object') return d;
    const out = { rcinfo: canonicalRcinfo(d.rcinfo || {}) };
    if ('payload' in d) out.payload = d.payload;
    return out;
}

/* ---- (a) heprouter encodes, hep-js decodes ---- */

function overrideArgs(ov) {
    const args = [];
    for (const [k, v] of Object.entries(ov)) args.push(`--${k}`, v);
    return args;
}

/* Chunk bytes of a walk, minus the chunk types an override set replaces. */
function untouchedChunks(chunks, ov) {
    const replaced = new Set();
    if ('capture-id' in ov) replaced.add(CHUNK.CAPTURE_ID);
    if ('time' in ov) { replaced.add(CHUNK.TS_SEC); replaced.add(CHUNK.TS_USEC); }
    for (const [opt, , type] of BYTES_OVERRIDES) if (opt in ov) replaced.add(type);
    return chunks.filter((c) => !(c.vendor === 0 && replaced.has(c.type)))
                 .map((c) => c.raw.toString('hex'));
}

/*
 * Encodes input with one override set and checks the result three ways:
 * our independent walk, hepconv decode, and hep-js decapsulate.
 */
function checkEncode(ctx, inputFile, ov, opts = {}) {
    const input = hepconvDecode(inputFile);
    if ('error' in input) {
        mismatch(ctx, 'hepconv decode of the input', 'ok', input.error);
        return;
    }
    const outFile = path.join(WORK_DIR, 'a', `${ctx.replace(/[^A-Za-z0-9._-]+/g, '_')}.hep`);
    fs.mkdirSync(path.dirname(outFile), { recursive: true });
    const enc = hepconvEncode(inputFile, outFile, overrideArgs(ov));
    if (!same(ctx, 'hepconv encode exit status', 0, enc.status)) {
        console.log(`  stderr: ${enc.stderr}`);
        return;
    }
    const inBuf = fs.readFileSync(inputFile);
    const outBuf = fs.readFileSync(outFile);

    /* 1. Our own reader: well-formed HEP3, layout as promised. */
    const w = walk(outBuf);
    if (!same(ctx, 'HEP3 structure (independent walk)', undefined, w.error)) return;
    const types = w.chunks.filter((c) => c.vendor === 0).map((c) => c.type);
    const inWalk = input.version === 3 ? walk(inBuf).chunks : null;
    if (inWalk === null || inWalk[inWalk.length - 1].type === CHUNK.PAYLOAD) {
        same(ctx, 'payload chunk stays last', CHUNK.PAYLOAD, w.chunks[w.chunks.length - 1].type);
    }
    if (input.version === 3 && Object.keys(ov).length === 0) {
        same(ctx, 'unchanged v3 is copied byte for byte', inBuf.toString('hex'),
             outBuf.toString('hex'));
    }
    if (input.version === 3) {
        same(ctx, 'chunks not overridden are kept in order, byte for byte',
             untouchedChunks(inWalk, ov), untouchedChunks(w.chunks, ov));
    } else {
        const dup = types.filter((t, i) => types.indexOf(t) !== i);
        same(ctx, 'no duplicate chunk types', [], dup);
        if (Object.keys(ov).length === 0) {
            /* v2 converts to exactly what Kamailio sends as v3 (HEP.md). */
            const v6 = input.family === AF_INET6;
            const order = KAMAILIO_V3_ORDER
                .filter((t) => input.version === 2 ||
                        ![CHUNK.TS_SEC, CHUNK.TS_USEC, CHUNK.CAPTURE_ID].includes(t))
                .map((t) => (v6 && t === CHUNK.SRC_IP4 ? CHUNK.SRC_IP6 :
                             v6 && t === CHUNK.DST_IP4 ? CHUNK.DST_IP6 : t));
            same(ctx, 'v1/v2 conversion uses Kamailio\'s v3 chunk order', order, types);
            if (input.version === 2 && !v6) {
                same(ctx, 'v2 conversion has Kamailio\'s v3 overhead', KAMAILIO_V3_OVERHEAD,
                     outBuf.length - input.payload_len);
            }
        }
    }

    /* 2. Our decoder on our encoder's output. */
    const out = hepconvDecode(outFile);
    const expected = expectedAfterEncode(input, ov);
    same(ctx, 'hepconv decode of the output: version', 3, out.version);
    same(ctx, 'hepconv decode of the output: fields', expected, canonical(fields(out)));

    /* 3. hep-js on our encoder's output. */
    const capt = w.chunks.find((c) => c.vendor === 0 && c.type === CHUNK.CAPTURE_ID);
    const got = hepjsDecoded(outBuf);
    if (capt && capt.value.length === 2) {
        quirk('Q2');
        same(ctx, 'hep-js rejects a 2-byte capture id (Q2)', false, got);
        return;
    }
    if (opts.vendorChunks) quirk('Q6');
    same(ctx, 'hep-js decapsulate', hepjsExpected(expected, w.chunks), got);
}

/* Override sets every input is encoded with. */
function overrideSets(name) {
    return [
        ['plain', {}],
        ['ids', {
            'capture-id': '4294967295', 'node-name': 'heprouter-test',
            'auth-key': 's3cret key', 'correlation-id': `corr-${name}@heprouter.test`,
        }],
        ['time', { time: '1700000000.000001', 'capture-id': '0' }],
        ['utf8', { 'node-name': 'n\u0153ud-\u00e9t\u00e9', 'correlation-id': 'x'.repeat(1000) }],
        ['remove', { 'node-name': '', 'auth-key': '', 'correlation-id': '' }],
    ];
}

/* HEP v1/v2 bytes as the C structs lay them out (HEP.md), for IPv6 inputs. */
function hep12(version, family, src, dst, sport, dport, payload, time) {
    const addrLen = family === AF_INET6 ? 16 : 4;
    const hlen = 8 + 2 * addrLen;
    const parts = [Buffer.from([version, hlen, family, 17, 0, 0, 0, 0])];
    parts[0].writeUInt16BE(sport, 4);
    parts[0].writeUInt16BE(dport, 6);
    parts.push(family === AF_INET6 ? ip6Bytes(src) : Buffer.from(src.split('.').map(Number)));
    parts.push(family === AF_INET6 ? ip6Bytes(dst) : Buffer.from(dst.split('.').map(Number)));
    if (version === 2) {
        const t = Buffer.alloc(12);
        t.writeUInt32LE(time.sec, 0);
        t.writeUInt32LE(time.usec, 4);
        t.writeUInt16LE(time.captureId, 8);
        parts.push(t);
    }
    parts.push(Buffer.from(payload, 'latin1'));
    return Buffer.concat(parts);
}

function chunk(vendor, type, value) {
    const h = Buffer.alloc(CHUNK_HDR_LEN);
    h.writeUInt16BE(vendor, 0);
    h.writeUInt16BE(type, 2);
    h.writeUInt16BE(CHUNK_HDR_LEN + value.length, 4);
    return Buffer.concat([h, value]);
}

function hep3(chunks) {
    const b = Buffer.concat([Buffer.from('HEP3\0\0', 'latin1'), ...chunks]);
    b.writeUInt16BE(b.length, 4);
    return b;
}

function u8(v) { return Buffer.from([v]); }
function u16(v) { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; }
function u32(v) { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; }

/* IPv6 test addresses: every byte < 0x80 (Q1). */
const IP6_SRC = '2001:470:1f0b:7d::5060';
const IP6_DST = '2001:470:1f0b:7d::1';
const SIP_OPTIONS = 'OPTIONS sip:bob@heprouter.test SIP/2.0\r\n' +
    'Via: SIP/2.0/UDP [2001:470:1f0b:7d::5060]:5060;branch=z9hG4bK-synth\r\n' +
    'From: <sip:alice@heprouter.test>;tag=1\r\nTo: <sip:bob@heprouter.test>\r\n' +
    'Call-ID: synth-1@heprouter.test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n';

/* Inputs Kamailio's captures do not cover. */
function syntheticInputs(dir) {
    fs.mkdirSync(dir, { recursive: true });
    const time = { sec: 1795692311, usec: 999999, captureId: 65535 };
    const common = (src, dst, extra) => [
        chunk(0, CHUNK.FAMILY, u8(AF_INET6)), chunk(0, CHUNK.IP_PROTO, u8(6)),
        chunk(0, CHUNK.SRC_IP6, ip6Bytes(src)), chunk(0, CHUNK.DST_IP6, ip6Bytes(dst)),
        chunk(0, CHUNK.SRC_PORT, u16(5060)), chunk(0, CHUNK.DST_PORT, u16(65535)),
        chunk(0, CHUNK.TS_SEC, u32(4294967295)), chunk(0, CHUNK.TS_USEC, u32(0)),
        chunk(0, CHUNK.PROTO_TYPE, u8(1)), ...extra,
        chunk(0, CHUNK.PAYLOAD, Buffer.from(SIP_OPTIONS, 'latin1')),
    ];
    const files = {
        'v1-ipv6': hep12(1, AF_INET6, IP6_SRC, IP6_DST, 5060, 5080, SIP_OPTIONS),
        'v2-ipv6': hep12(2, AF_INET6, IP6_SRC, IP6_DST, 5060, 5080, SIP_OPTIONS, time),
        'v2-ipv4-maxid': hep12(2, AF_INET, '192.0.2.1', '198.51.100.2', 65535, 1,
                               SIP_OPTIONS, time),
        'v3-ipv6-capt16': hep3(common(IP6_SRC, IP6_DST, [chunk(0, CHUNK.CAPTURE_ID, u16(2001))])),
        'v3-ipv6-vendor': hep3(common(IP6_SRC, IP6_DST, [
            chunk(0, CHUNK.CAPTURE_ID, u32(2001)),
            chunk(0x0008, 0x0080, Buffer.from('vendor-value', 'latin1')),
            chunk(0, 0x0027, Buffer.from('unknown generic', 'latin1')),
            chunk(0, CHUNK.NODE_NAME, Buffer.from('edge-7', 'latin1')),
        ])),
        /* Overridable chunks after the payload (hep-js itself appends chunks there). */
        'v3-ipv4-after-payload': hep3([
            chunk(0, CHUNK.FAMILY, u8(AF_INET)), chunk(0, CHUNK.IP_PROTO, u8(17)),
            chunk(0, CHUNK.SRC_IP4, Buffer.from([192, 0, 2, 1])),
            chunk(0, CHUNK.DST_IP4, Buffer.from([192, 0, 2, 2])),
            chunk(0, CHUNK.SRC_PORT, u16(5060)), chunk(0, CHUNK.DST_PORT, u16(5060)),
            chunk(0, CHUNK.PAYLOAD, Buffer.from(SIP_OPTIONS, 'latin1')),
            chunk(0, CHUNK.TS_SEC, u32(1795692311)), chunk(0, CHUNK.TS_USEC, u32(5)),
            chunk(0, CHUNK.PROTO_TYPE, u8(1)), chunk(0, CHUNK.CAPTURE_ID, u32(7)),
            chunk(0, CHUNK.AUTH_KEY, Buffer.from('old-key', 'latin1')),
            chunk(0, CHUNK.CORRELATION_ID, Buffer.from('old-corr', 'latin1')),
            chunk(0, CHUNK.NODE_NAME, Buffer.from('old-node', 'latin1')),
        ]),
    };
    const out = [];
    for (const [name, buf] of Object.entries(files)) {
        const file = path.join(dir, `${name}.hep`);
        fs.writeFileSync(file, buf);
        out.push([name, file]);
    }
    return out;
}

function partA() {
    console.log('== (a) heprouter encodes, hep-js decodes');
    const inputs = [];
    for (const v of ['v1', 'v2', 'v3']) {
        const dir = path.join(DATA_DIR, v);
        const files = fs.readdirSync(dir).filter((f) => /^\d+\.hep$/.test(f)).sort();
        if (files.length === 0) throw new Error(`no NNN.hep files in ${dir}`);
        for (const f of files) inputs.push([`kamailio-${v}-${f.replace('.hep', '')}`, path.join(dir, f)]);
    }
    const synthetic = syntheticInputs(path.join(WORK_DIR, 'synthetic'));
    inputs.push(...synthetic);
    const before = checks;
    const bad = mismatches.length;
    for (const [name, file] of inputs) {
        for (const [setName, ov] of overrideSets(name)) {
            checkEncode(`${name}/${setName}`, file, ov, { vendorChunks: name.includes('vendor') });
        }
    }
    console.log(`(a) ${inputs.length} inputs x ${overrideSets('').length} override sets: ` +
                `${checks - before} checks, ${mismatches.length - bad} mismatches`);
}

/* ---- (b) hep-js encodes, heprouter decodes ---- */

const SIP_INVITE_HEAD = 'INVITE sip:bob@heprouter.test SIP/2.0\r\n' +
    'Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-hepjs\r\n' +
    'From: <sip:alice@heprouter.test>;tag=a1\r\nTo: <sip:bob@heprouter.test>\r\n' +
    'Call-ID: hepjs-big@heprouter.test\r\nCSeq: 1 INVITE\r\n' +
    'Content-Type: application/sdp\r\n';

/* A SIP INVITE of exactly n bytes (ASCII, Q4), padded with SDP attributes. */
function bigInvite(n) {
    const sdpHead = 'v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n' +
        'm=audio 4000 RTP/AVP 0\r\n';
    const headerFor = (bodyLen) => `${SIP_INVITE_HEAD}Content-Length: ${bodyLen}\r\n\r\n`;
    let bodyLen = n - headerFor(n).length;
    bodyLen = n - headerFor(bodyLen).length;
    let body = sdpHead;
    let i = 0;
    while (body.length < bodyLen) body += `a=x-pad-${i++}:${'p'.repeat(60)}\r\n`;
    body = body.slice(0, bodyLen);
    const msg = headerFor(bodyLen) + body;
    if (msg.length !== n) throw new Error(`bigInvite(${n}) built ${msg.length} bytes`);
    return msg;
}

function baseRcinfo(extra) {
    return {
        protocolFamily: AF_INET, protocol: 17, srcIp: '10.0.0.1', dstIp: '192.168.1.2',
        srcPort: 5060, dstPort: 5080, timeSeconds: 1433719443, timeUseconds: 979,
        payloadType: 1, captureId: 2001, hepNodeName: 'edge-1', ...extra,
    };
}

/* Removes chunks (vendor 0) of the given types and fixes the total length. */
function dropChunks(buf, types) {
    const w = walk(buf);
    if (w.error) throw new Error(`dropChunks: ${w.error}`);
    return hep3(w.chunks.filter((c) => !(c.vendor === 0 && types.includes(c.type))).map((c) => c.raw));
}

/* The hepconv decode fields a hep-js packet built from rcinfo must give. */
function expectedFromRcinfo(rc, payload) {
    const e = {
        family: rc.protocolFamily, ip_proto: rc.protocol,
        src: rc.srcIp6 !== undefined ? rc.srcIp6Text : rc.srcIp,
        dst: rc.dstIp6 !== undefined ? rc.dstIp6Text : rc.dstIp,
        sport: rc.srcPort || 0, dport: rc.dstPort || 0,
        ts_sec: rc.timeSeconds, ts_usec: rc.timeUseconds, proto_type: rc.payloadType,
        capture_id: rc.captureId, capture_id_len: 4,
    };
    if (typeof rc.capturePass === 'string') e.auth_key = rc.capturePass;
    if (rc.correlation_id) e.correlation_id = rc.correlation_id;
    /* Q3: the node name chunk is always there. */
    e.node_name = rc.hepNodeName ? rc.hepNodeName : String(rc.captureId);
    e.compressed = false;
    e.payload_len = Buffer.byteLength(payload, 'latin1');
    e.payload_hex = Buffer.from(payload, 'latin1').toString('hex');
    return canonical(e);
}

function partB() {
    console.log('== (b) hep-js encodes, heprouter decodes');
    quirk('Q4');
    const dir = path.join(WORK_DIR, 'b');
    fs.mkdirSync(dir, { recursive: true });
    const cases = [
        ['ipv4-udp', baseRcinfo({}), SIP_OPTIONS],
        ['ipv4-tcp-auth-corr', baseRcinfo({
            protocol: 6, capturePass: 'myHep', correlation_id: 'abc-123@10.0.0.1',
            srcPort: 65535, dstPort: 1,
        }), SIP_OPTIONS],
        ['ipv4-tls22-no-node-name', baseRcinfo({ protocol: 22, hepNodeName: undefined }), SIP_OPTIONS],
        ['ipv4-capture-id-max-time-max', baseRcinfo({
            captureId: 4294967295, timeSeconds: 4294967295, timeUseconds: 999999,
            hepNodeName: 'n'.repeat(300),
        }), SIP_OPTIONS],
        ['ipv4-capture-id-0-ports-0', baseRcinfo({
            captureId: 0, srcPort: 0, dstPort: 0, timeSeconds: 0, timeUseconds: 0,
        }), SIP_OPTIONS],
        ['ipv4-log-corr', baseRcinfo({
            payloadType: 100, correlation_id: 'inv-1-6846@127.0.0.1', capturePass: '',
        }), '{"level":"info","msg":"call started"}'],
        ['ipv4-rtcp-corr', baseRcinfo({ payloadType: 5, correlation_id: 'c'.repeat(2000) }),
         '{"type":200,"ssrc":"0x1234","report_count":0}'],
        ['ipv6-udp', { ...baseRcinfo({ protocolFamily: AF_INET6 }), ipv6: true }, SIP_OPTIONS],
        ['ipv6-tcp-auth-corr', {
            ...baseRcinfo({ protocolFamily: AF_INET6, protocol: 6, capturePass: 'k',
                            correlation_id: 'v6-corr' }), ipv6: true }, SIP_OPTIONS],
    ];
    /* Real SIP: every Kamailio v3 capture re-encoded by hep-js from its fields. */
    const v3dir = path.join(DATA_DIR, 'v3');
    for (const f of fs.readdirSync(v3dir).filter((n) => /^\d+\.hep$/.test(n)).sort()) {
        const d = hepconvDecode(path.join(v3dir, f));
        const rc = {
            protocolFamily: d.family, protocol: d.ip_proto, srcIp: d.src, dstIp: d.dst,
            srcPort: d.sport, dstPort: d.dport, timeSeconds: d.ts_sec, timeUseconds: d.ts_usec,
            payloadType: d.proto_type, captureId: d.capture_id,
        };
        if ('correlation_id' in d) rc.correlation_id = d.correlation_id;
        cases.push([`kamailio-v3-${f.replace('.hep', '')}`, rc,
                    Buffer.from(d.payload_hex, 'hex').toString('latin1')]);
    }
    /* Largest packet hep-js can build: total length exactly 65535. */
    const bigRc = baseRcinfo({ hepNodeName: 'big', capturePass: 'key', correlation_id: 'big-call' });
    const overhead = hepjs.encapsulate('', bigRc).length;
    cases.push(['ipv4-max-size-65535', bigRc, bigInvite(HEP3_MAX_LEN - overhead)]);

    const before = checks;
    const bad = mismatches.length;
    for (const [name, rcIn, payload] of cases) {
        const ctx = `hepjs-${name}`;
        let rc = { ...rcIn };
        let buf;
        if (rc.ipv6) {
            /* Q1: hep-js writes IPv6 only through the vendor 0 / type 5, 6 hook. */
            quirk('Q1');
            delete rc.ipv6;
            rc = { ...rc, srcIp: IP6_SRC, dstIp: IP6_DST,
                   srcIp6: ip6Bytes(IP6_SRC).toString('latin1'),
                   dstIp6: ip6Bytes(IP6_DST).toString('latin1'),
                   srcIp6Text: IP6_SRC, dstIp6Text: IP6_DST };
            const raw = hepjs.encapsulate(payload, rc);
            const rawFile = path.join(dir, `${name}-as-hepjs-writes-it.hep`);
            fs.writeFileSync(rawFile, raw);
            /* As written it has IPv4 0.0.0.0 chunks too: we must reject it. */
            same(ctx, 'hep-js IPv6 packet with its bogus IPv4 chunks is rejected',
                 'bad_address', hepconvDecode(rawFile).error);
            buf = dropChunks(raw, [CHUNK.SRC_IP4, CHUNK.DST_IP4]);
        } else {
            buf = hepjs.encapsulate(payload, rc);
        }
        if (name === 'ipv4-max-size-65535') same(ctx, 'packet size', HEP3_MAX_LEN, buf.length);
        const file = path.join(dir, `${name}.hep`);
        fs.writeFileSync(file, buf);

        const d = hepconvDecode(file);
        if (!same(ctx, 'hepconv decode status', undefined, d.error)) continue;
        same(ctx, 'hepconv decode: version and length', [3, buf.length], [d.version, d.len]);
        same(ctx, 'hepconv decode: fields', expectedFromRcinfo(rc, payload), canonical(fields(d)));
        if (rc.hepNodeName === undefined) quirk('Q3');

        /* hep-js must read its own packet the same way (else: its quirk). */
        const self = hepjsDecoded(buf);
        same(ctx, 'hep-js decodes its own packet as hepconv does',
             hepjsExpected(fields(d), walk(buf).chunks), self);

        /*
         * And the packet survives heprouter's encoder, checked as in (a);
         * the 65535-byte one only with override sets that do not grow it.
         */
        for (const [setName, ov] of overrideSets(name)) {
            if (buf.length === HEP3_MAX_LEN && !['plain', 'time', 'remove'].includes(setName)) {
                continue;
            }
            checkEncode(`${ctx}/${setName}`, file, ov);
        }
    }
    /* Q7: one byte more and hep-js refuses; so must hep_encode(). */
    let threw = false;
    try {
        hepjs.encapsulate(bigInvite(HEP3_MAX_LEN - overhead + 1), bigRc);
    } catch (e) {
        threw = e instanceof RangeError;
    }
    quirk('Q7');
    same('hepjs-over-65535', 'hep-js refuses a 65536-byte packet (RangeError)', true, threw);
    const maxFile = path.join(dir, 'ipv4-max-size-65535.hep');
    const tooBig = hepconvEncode(maxFile, path.join(dir, 'too-big.hep'), ['--node-name', 'big1']);
    same('hepconv-over-65535', 'hepconv encode refuses to grow a 65535-byte packet',
         [1, true], [tooBig.status, /too_big/.test(tooBig.stderr)]);
    console.log(`(b) ${cases.length} hep-js packets: ${checks - before} checks, ` +
                `${mismatches.length - bad} mismatches`);
}

if (PART.includes('a')) partA();
if (PART.includes('b')) partB();
const QUIRK_TEXT = {
    Q1: 'IPv6 addresses only via vendor-0 extension hook',
    Q2: '2-byte capture id makes decapsulate() return false',
    Q3: 'node name chunk always written (String(captureId) by default)',
    Q4: 'string chunks sized by JS length: only ASCII given to encapsulate()',
    Q5: 'octet chunks decoded as UTF-8 strings',
    Q6: 'keep-alive/VLAN/gzip/vendor chunks not decoded by type+vendor',
    Q7: 'refuses packets above 65535 bytes',
};
quirk('Q5');
console.log('hep-js quirks compared around: ' +
            [...quirksSeen].sort().map((q) => `${q} (${QUIRK_TEXT[q] || ''})`).join('; '));
console.log(`${checks} checks, ${mismatches.length} mismatches`);
process.exit(mismatches.length === 0 ? 0 : 1);
