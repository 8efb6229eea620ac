//! AuthService.LoginOidc against a real server (ephemeral port) and a real PostgreSQL, with
//! RS256 tokens signed here.
//!
//! The signing keys are committed test-only PKCS#8 PEM files under `tests/fixtures/` (made
//! with `openssl genpkey`), because RSA key generation in debug builds is slow and nextest runs
//! every test in its own process. The JWKS is built from their public parts and written to a
//! temporary file per test, or served by a tiny HTTP or HTTPS server on 127.0.0.1. For HTTPS
//! a CA and a server certificate for `localhost` and `127.0.0.1` are made at test time with
//! `rcgen` (nothing is checked in); the CA is handed to the verifier as its CA file.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../common/mod.rs"]
mod common;
mod sources;
mod support;
mod tokens;
