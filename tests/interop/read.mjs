// Independent Node readers of the service's published lists.
//
// Usage: node read.mjs EXPECTED.json
//
// EXPECTED.json is written by run.py: { base, lists: [{format, uri,
// expected: {idx: status}}] }. For every list this fetches the URI and the
// service's JWKS over HTTP, verifies the signature with `jose` (alg ES256,
// typ by format, exp in the future, sub equal to the URI), then reads every
// index with the ecosystem's own decoder:
//   token (/t/):     @sd-jwt/jwt-status-list getListFromStatusListJWT + getStatus
//   bitstring (/b/): @digitalbazaar/vc-bitstring-status-list decodeList
// and compares with the status run.py set. Exits 1 on any mismatch.

import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';
import { getListFromStatusListJWT } from '@sd-jwt/jwt-status-list';
import { decodeList } from '@digitalbazaar/vc-bitstring-status-list';

const expectedFile = process.argv[2];
const { base, lists } = JSON.parse(await readFile(expectedFile, 'utf8'));

const failures = [];
const fail = (msg) => {
  failures.push(msg);
  if (failures.length <= 20) console.error(`node: MISMATCH ${msg}`);
};

const jwksResponse = await fetch(`${base}/.well-known/jwks.json`);
if (!jwksResponse.ok) throw new Error(`JWKS: HTTP ${jwksResponse.status}`);
const jwks = createLocalJWKSet(await jwksResponse.json());

const TYP = { token: 'statuslist+jwt', bitstring: 'vc+jwt' };
const MEDIA = { token: 'application/statuslist+jwt', bitstring: 'application/vc+jwt' };

let read = 0;
for (const list of lists) {
  const response = await fetch(list.uri);
  if (response.status !== 200) {
    fail(`${list.uri}: HTTP ${response.status}`);
    continue;
  }
  const media = (response.headers.get('content-type') || '').split(';')[0].trim();
  if (media !== MEDIA[list.format]) fail(`${list.uri}: content-type ${media}`);
  const jwt = (await response.text()).trim();

  // Signature, typ, exp (jose rejects an expired token) and sub.
  let payload;
  try {
    ({ payload } = await jwtVerify(jwt, jwks, {
      algorithms: ['ES256'],
      typ: TYP[list.format],
      subject: list.uri,
      requiredClaims: ['exp', 'iat', 'sub', 'iss'],
    }));
  } catch (e) {
    fail(`${list.uri}: jose verification failed: ${e.code || ''} ${e.message}`);
    continue;
  }
  const now = Math.floor(Date.now() / 1000);
  if (!(payload.exp > now)) fail(`${list.uri}: exp ${payload.exp} not in the future`);
  if (payload.sub !== list.uri) fail(`${list.uri}: sub ${payload.sub}`);
  if (!decodeProtectedHeader(jwt).kid) fail(`${list.uri}: no kid`);

  let readStatus;
  if (list.format === 'token') {
    const statusList = getListFromStatusListJWT(jwt);
    readStatus = (idx) => statusList.getStatus(idx);
  } else {
    if (payload.id !== list.uri) fail(`${list.uri}: credential id ${payload.id}`);
    const subject = payload.credentialSubject;
    if (!subject || subject.type !== 'BitstringStatusList') {
      fail(`${list.uri}: no BitstringStatusList credentialSubject`);
      continue;
    }
    const size = subject.statusSize ?? 1;
    const bitstring = await decodeList({ encodedList: subject.encodedList });
    // W3C: entry i is the statusSize bits starting at bit i * statusSize,
    // the first of them the most significant.
    readStatus = (idx) => {
      let value = 0;
      for (let k = 0; k < size; k++) {
        value = (value << 1) | (bitstring.getStatus(idx * size + k) ? 1 : 0);
      }
      return value;
    };
  }
  for (const [idx, want] of Object.entries(list.expected)) {
    let got;
    try {
      got = readStatus(Number(idx));
    } catch (e) {
      fail(`${list.uri} idx ${idx}: ${e.message}`);
      continue;
    }
    if (got !== want) fail(`${list.uri} idx ${idx}: read ${got}, expected ${want}`);
    read++;
  }
}

if (failures.length > 0) {
  console.error(`node: ${failures.length} mismatches`);
  process.exit(1);
}
console.log(`node: ${read} entries in ${lists.length} lists read by @sd-jwt/jwt-status-list / @digitalbazaar/vc-bitstring-status-list and verified with jose: all match`);
