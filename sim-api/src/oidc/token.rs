//! One token: the header check that comes before any key is looked at, the `jsonwebtoken`
//! validation (signature, then `iss`, `aud`, `exp`, `nbf`), and the identity it names.

use super::{Identity, OidcError, OidcSettings, MAX_TOKEN_BYTES};
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The only algorithm accepted, as it must appear in the header.
const ALGORITHM: &str = "RS256";

/// The `jsonwebtoken` rules for `settings`: RS256 only, exact issuer, the audience, `exp`
/// (required) and `nbf` with the leeway, `iss`, `aud` and `sub` required.
pub(super) fn validation(settings: &OidcSettings) -> Validation {
    let mut v = Validation::new(Algorithm::RS256);
    v.leeway = settings.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_issuer(&[&settings.issuer]);
    v.set_audience(&[&settings.audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

fn b64(part: &str) -> Result<Vec<u8>, OidcError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| OidcError::Malformed)
}

/// Checks the shape and header of `token` before any key is looked at and returns its
/// `kid`: three base64url parts, `alg` exactly `RS256` (so `none`, `HS*`, and a public key
/// used as an HMAC secret never get further), no `crit`, a `kid`.
pub(super) fn precheck(token: &str) -> Result<String, OidcError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(OidcError::Malformed);
    }
    let mut it = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(OidcError::Malformed);
    };
    let parsed: Header = serde_json::from_slice(&b64(header)?).map_err(|_| OidcError::Malformed)?;
    if parsed.alg != ALGORITHM {
        return Err(OidcError::UnsupportedAlgorithm);
    }
    if parsed.crit.is_some() {
        return Err(OidcError::Malformed);
    }
    let kid = parsed.kid.ok_or(OidcError::UnknownKey)?;
    b64(payload)?;
    b64(signature)?;
    Ok(kid)
}

/// The claims this module reads itself; `jsonwebtoken` checks the others.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    preferred_username: Option<String>,
}

/// Verifies the signature of `token` with `key`, then its claims, and returns who it names.
pub(super) fn verify(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Identity, OidcError> {
    let data =
        jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| refusal(e.kind()))?;
    identity(data.claims)
}

/// The reason given for a `jsonwebtoken` error.
fn refusal(kind: &ErrorKind) -> OidcError {
    match kind {
        ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) => OidcError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
            OidcError::UnsupportedAlgorithm
        }
        ErrorKind::InvalidIssuer => OidcError::WrongIssuer,
        ErrorKind::InvalidAudience => OidcError::WrongAudience,
        ErrorKind::ExpiredSignature => OidcError::Expired,
        ErrorKind::ImmatureSignature => OidcError::NotYetValid,
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
            match claim.as_str() {
                "iss" => OidcError::WrongIssuer,
                "aud" => OidcError::WrongAudience,
                "exp" if matches!(kind, ErrorKind::MissingRequiredClaim(_)) => {
                    OidcError::MissingClaim("exp")
                }
                "sub" if matches!(kind, ErrorKind::MissingRequiredClaim(_)) => {
                    OidcError::MissingClaim("sub")
                }
                _ => OidcError::Malformed,
            }
        }
        _ => OidcError::Malformed,
    }
}

/// The rule every username follows (1 to 255 characters, no control characters, so no
/// NUL): [`crate::text::USERNAME`].
fn usable_username(name: &str) -> bool {
    crate::text::check(name, crate::text::USERNAME).is_ok()
}

/// `sub` (required, not empty), and the username: `preferred_username`, or `sub` when that
/// is absent or empty.
fn identity(claims: Claims) -> Result<Identity, OidcError> {
    let subject = claims
        .sub
        .filter(|s| !s.is_empty())
        .ok_or(OidcError::MissingClaim("sub"))?;
    let username = match claims.preferred_username {
        Some(name) if !name.is_empty() => name,
        _ => subject.clone(),
    };
    if !usable_username(&username) {
        return Err(OidcError::BadUsername);
    }
    Ok(Identity { subject, username })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Claims {
        serde_json::from_str(json).unwrap()
    }

    fn header(json: &str) -> String {
        format!("{}.e30.c2ln", b64url(json))
    }

    fn b64url(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn username_from_preferred_username_or_sub() {
        let id = identity(claims(r#"{"sub":"u-1","preferred_username":"alice"}"#)).unwrap();
        assert_eq!(
            (id.subject.as_str(), id.username.as_str()),
            ("u-1", "alice")
        );
        let id = identity(claims(r#"{"sub":"u-1","preferred_username":""}"#)).unwrap();
        assert_eq!(id.username, "u-1");
        assert!(matches!(
            identity(claims(r#"{"sub":""}"#)),
            Err(OidcError::MissingClaim("sub"))
        ));
        assert!(matches!(
            identity(claims(r#"{"sub":"u","preferred_username":"a\nb"}"#)),
            Err(OidcError::BadUsername)
        ));
        // A NUL never reaches the database: the token is refused as it is.
        assert!(matches!(
            identity(claims(r#"{"sub":"u\u0000"}"#)),
            Err(OidcError::BadUsername)
        ));
    }

    #[test]
    fn header_is_checked_before_any_key() {
        assert_eq!(
            precheck(&header(r#"{"alg":"RS256","kid":"k"}"#)).unwrap(),
            "k"
        );
        for alg in ["none", "HS256", "ES256", "rs256"] {
            let h = header(&format!(r#"{{"alg":"{alg}","kid":"k"}}"#));
            assert!(
                matches!(precheck(&h), Err(OidcError::UnsupportedAlgorithm)),
                "{alg}"
            );
        }
        assert!(matches!(
            precheck(&header(r#"{"alg":"RS256"}"#)),
            Err(OidcError::UnknownKey)
        ));
        assert!(matches!(
            precheck(&header(r#"{"alg":"RS256","kid":"k","crit":["x"]}"#)),
            Err(OidcError::Malformed)
        ));
        assert!(matches!(precheck("a.b"), Err(OidcError::Malformed)));
    }

    #[test]
    fn jsonwebtoken_errors_become_short_reasons() {
        let missing = |c: &str| refusal(&ErrorKind::MissingRequiredClaim(c.into())).to_string();
        assert_eq!(missing("iss"), "wrong issuer");
        assert_eq!(missing("aud"), "wrong audience");
        assert_eq!(missing("exp"), "token lacks a usable `exp` claim");
        assert_eq!(missing("sub"), "token lacks a usable `sub` claim");
        let format = |c: &str| refusal(&ErrorKind::InvalidClaimFormat(c.into())).to_string();
        assert_eq!(format("exp"), "malformed token");
        assert_eq!(format("nbf"), "malformed token");
        assert_eq!(
            refusal(&ErrorKind::ExpiredSignature).to_string(),
            "token expired"
        );
        assert_eq!(
            refusal(&ErrorKind::InvalidSignature).to_string(),
            "bad signature"
        );
    }

    #[test]
    fn validation_follows_the_settings() {
        let mut s = OidcSettings::new("iss", "aud", super::super::JwksSource::Discovery);
        s.leeway = std::time::Duration::from_secs(7);
        let v = validation(&s);
        assert_eq!(v.leeway, 7);
        assert_eq!(v.algorithms, [Algorithm::RS256]);
        assert!(v.validate_nbf && v.validate_exp);
    }
}
