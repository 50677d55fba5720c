//! Publishing: service signing keys, the JWKS document, and the signed list
//! tokens (IETF `statuslist+jwt`, W3C `BitstringStatusListCredential` as
//! `vc+jwt`).
