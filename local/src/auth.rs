//! An emulation of API Gateway's JWT authorizer for HTTP APIs
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html>),
//! with a local development key standing in for the identity provider.
//!
//! The template's authorizer names an issuer and audience that only exist in AWS (the Cognito
//! user pool and its client), so locally the same checks are made against [`LOCAL_ISSUER`] and
//! [`LOCAL_AUDIENCE`], with tokens signed (RS256) by a key generated on first use and kept in
//! `<state-dir>/auth/` ([`SigningKey`]). `orders-local mint-token` ([`mint`]) issues such tokens.
//!
//! Like API Gateway, [`Verifier::authorize`] takes the token from the `Authorization` header
//! (with or without `Bearer `), checks the algorithm (RSA) and the signature with the key named
//! by `kid`, `iss`, `aud` (or `client_id` when there is no `aud`), `exp`, `nbf` and `iat`, and
//! the route's scopes against `scope`/`scp`. The claims go to the function as
//! `requestContext.authorizer.jwt.claims`, every value as a string ([`claim_text`]).

use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The issuer of local tokens (`iss`), in place of the template's Cognito user pool.
pub const LOCAL_ISSUER: &str = "https://orders-local.invalid";
/// The audience of local tokens (`client_id`), in place of the template's user pool client.
pub const LOCAL_AUDIENCE: &str = "orders-local";
/// `sub` of the tokens `mint-token --staff` issues.
pub const STAFF_SUBJECT: &str = "staff-local";
/// The scope that makes a caller staff.
pub const STAFF_SCOPE: &str = "orders/admin";
/// The scope of customer tokens (informative; the handlers go by `sub`).
pub const CUSTOMER_SCOPE: &str = "orders/customer";
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 30;
/// Default lifetime of minted tokens.
pub const DEFAULT_TTL_SECS: u64 = 3600;

/// Where the private key is kept below the state directory.
pub fn key_path(state_dir: &Path) -> PathBuf {
    state_dir.join("auth").join("signing-key.pem")
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The local development key: RSA 2048, PKCS#8 PEM, mode 0600. Its `kid` is the key's JWK
/// thumbprint (RFC 7638), so nothing but the key itself needs to be stored.
pub struct SigningKey {
    pub path: PathBuf,
    pub kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    /// The key in `<state_dir>/auth/`, generated if there is none yet. Safe to call from two
    /// processes at once (the runner and `mint-token`): the first key written wins.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, String> {
        let path = key_path(state_dir);
        if !path.exists() {
            create(&path)?;
        }
        Self::load(&path)
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let encoding = EncodingKey::from_rsa_pem(&pem)
            .map_err(|e| format!("{}: not an RSA private key: {e}", path.display()))?;
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Ok(Self {
            path: path.to_path_buf(),
            kid,
            encoding,
            jwk,
        })
    }

    /// The public key as the issuer's `jwks_uri` serves it.
    pub fn jwks(&self) -> Value {
        serde_json::to_value(JwkSet {
            keys: vec![self.jwk.clone()],
        })
        .unwrap_or(Value::Null)
    }

    /// The public key, for a [`Verifier`].
    pub fn decoding_key(&self) -> Result<DecodingKey, String> {
        DecodingKey::from_jwk(&self.jwk).map_err(|e| e.to_string())
    }

    /// A compact RS256 JWT of `claims`, with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        self.sign_as(claims, &self.kid)
    }

    /// Signs with this key but names `kid` in the header (tests: a token signed by the wrong key).
    pub fn sign_as(&self, claims: &Value, kid: &str) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }
}

fn create(path: &Path) -> Result<(), String> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let dir = path.parent().ok_or("key path has no directory")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| "cannot generate an RSA key".to_string())?;
    let der: Pkcs8V1Der<'static> = pair
        .as_der()
        .map_err(|_| "cannot encode the RSA key".to_string())?;
    let text = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
    // Written aside, then linked into place: another process creating the key at the same
    // moment either sees no key or a complete one, and only one key ever wins.
    let temporary = dir.join(format!(".signing-key.{}.{}.tmp", std::process::id(), now()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
    let linked = written.and_then(|()| match std::fs::hard_link(&temporary, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = std::fs::remove_file(&temporary);
    linked.map_err(|e| format!("{}: {e}", path.display()))
}

/// Who a minted token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Customer(String),
    Staff,
}

/// The claims of a local token, shaped like a Cognito access token (`client_id` rather than
/// `aud`, `token_use`, `scope`), valid from `now` for `ttl_secs`.
pub fn claims(subject: &Subject, ttl_secs: u64, now: u64) -> Value {
    let (sub, scope) = match subject {
        Subject::Customer(id) => (id.as_str(), CUSTOMER_SCOPE),
        Subject::Staff => (STAFF_SUBJECT, STAFF_SCOPE),
    };
    json!({
        "iss": LOCAL_ISSUER,
        "sub": sub,
        "client_id": LOCAL_AUDIENCE,
        "token_use": "access",
        "scope": scope,
        "username": sub,
        "iat": now,
        "auth_time": now,
        "exp": now + ttl_secs,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// A token for `subject`, signed by the key in `state_dir` (generated if missing).
pub fn mint(state_dir: &Path, subject: &Subject, ttl_secs: u64) -> Result<String, String> {
    SigningKey::load_or_create(state_dir)?.sign(&claims(subject, ttl_secs, now()))
}

/// Why a request was refused: 401 `{"message":"Unauthorized"}` or 403 `{"message":"Forbidden"}`,
/// with the `www-authenticate` value API Gateway sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    /// What went wrong, for the `[api]` log line and `error_description` (never token contents).
    pub reason: String,
    pub www_authenticate: String,
}

impl Rejection {
    fn unauthorized(scopes: &[String], reason: &str) -> Self {
        Self {
            status: 401,
            reason: reason.into(),
            www_authenticate: format!(
                "Bearer scope=\"{}\" error=\"invalid_token\" error_description=\"{reason}\"",
                scopes.join(" ")
            ),
        }
    }

    pub fn message(&self) -> &'static str {
        if self.status == 403 {
            "Forbidden"
        } else {
            "Unauthorized"
        }
    }
}

/// The checks of one JWT authorizer: issuer, audiences and the issuer's keys by `kid`.
pub struct Verifier {
    pub issuer: String,
    pub audiences: Vec<String>,
    keys: HashMap<String, DecodingKey>,
    pub leeway_secs: u64,
}

impl Verifier {
    /// The local authorizer: [`LOCAL_ISSUER`], [`LOCAL_AUDIENCE`], `key`.
    pub fn local(key: &SigningKey) -> Result<Self, String> {
        Ok(Self::new(
            LOCAL_ISSUER,
            &[LOCAL_AUDIENCE],
            vec![(key.kid.clone(), key.decoding_key()?)],
        ))
    }

    pub fn new(issuer: &str, audiences: &[&str], keys: Vec<(String, DecodingKey)>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            keys: keys.into_iter().collect(),
            leeway_secs: LEEWAY_SECS,
        }
    }

    /// Checks the `Authorization` header value for a route that requires `scopes` (none: any
    /// valid token). On success, `requestContext.authorizer` as API Gateway fills it.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        scopes: &[String],
    ) -> Result<Value, Rejection> {
        let claims = self.verify(authorization, scopes)?;
        let granted = token_scopes(&claims);
        if !scopes.is_empty() && !granted.iter().any(|g| scopes.contains(g)) {
            return Err(Rejection {
                status: 403,
                reason: "the token does not have a required scope".into(),
                www_authenticate: format!(
                    "Bearer scope=\"{}\" error=\"insufficient_scope\" error_description=\"the token does not have a required scope\"",
                    scopes.join(" ")
                ),
            });
        }
        Ok(json!({
            "jwt": {
                "claims": stringify_claims(&claims),
                "scopes": if scopes.is_empty() { Value::Null } else { json!(granted) },
            }
        }))
    }

    /// The token's claims when it passes every check but the scopes.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        scopes: &[String],
    ) -> Result<Map<String, Value>, Rejection> {
        let reject = |reason: &str| Rejection::unauthorized(scopes, reason);
        let value = authorization.map(str::trim).unwrap_or_default();
        let token = match (value.get(..6), value.get(6..)) {
            (Some(prefix), Some(rest))
                if prefix.eq_ignore_ascii_case("bearer")
                    && (rest.is_empty() || rest.starts_with(char::is_whitespace)) =>
            {
                rest.trim()
            }
            _ => value,
        };
        if token.is_empty() {
            return Err(Rejection {
                status: 401,
                reason: "no token in the authorization header".into(),
                www_authenticate: "Bearer".into(),
            });
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| reject("the token is not a valid JWT"))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
        ) {
            return Err(reject("the token's signing algorithm is not supported"));
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or_else(|| reject("the token's kid does not match a key of the issuer"))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.set_issuer(&[&self.issuer]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                reject(match e.kind() {
                    K::InvalidSignature => "the token's signature is invalid",
                    K::ExpiredSignature => "the token has expired",
                    K::ImmatureSignature => "the token is not valid yet",
                    K::InvalidIssuer => "the token does not have a valid issuer",
                    K::MissingRequiredClaim(c) if c == "iss" => {
                        "the token does not have a valid issuer"
                    }
                    K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) => {
                        "the token does not have a valid expiry"
                    }
                    _ => "the token is not a valid JWT",
                })
            })?
            .claims;
        if let Some(iat) = claims.get("iat").and_then(Value::as_f64) {
            if iat > (now() + self.leeway_secs) as f64 {
                return Err(reject("the token was issued in the future"));
            }
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => self.audiences.contains(aud),
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .any(|a| self.audiences.iter().any(|x| x == a)),
            Some(_) => false,
            None => claims
                .get("client_id")
                .and_then(Value::as_str)
                .is_some_and(|c| self.audiences.iter().any(|x| x == c)),
        };
        if !audience_ok {
            return Err(reject("the token does not have a valid audience"));
        }
        Ok(claims)
    }
}

/// The token's scopes: `scope` (space-separated) or `scp` (a list, or space-separated).
pub fn token_scopes(claims: &Map<String, Value>) -> Vec<String> {
    let split = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) => split(s),
        (_, Some(Value::String(s))) => split(s),
        (_, Some(Value::Array(items))) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// A claim as API Gateway passes it (payload 2.0): strings as they are, numbers as their
/// decimal text, booleans `true`/`false`, lists as `[a b c]`, objects as JSON text.
pub fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(claim_text).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(_) => value.to_string(),
    }
}

/// Every claim turned into its text ([`claim_text`]).
pub fn stringify_claims(claims: &Map<String, Value>) -> Map<String, Value> {
    claims
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(claim_text(v))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "orders-local-auth-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn claims_become_strings_as_api_gateway_passes_them() {
        let claims = json!({
            "sub": "cust-1",
            "exp": 1795342530,
            "ratio": 1.5,
            "email_verified": true,
            "cognito:groups": ["staff", "ops"],
            "nested": {"a": 1},
            "empty": [],
        });
        let text = stringify_claims(claims.as_object().unwrap());
        assert_eq!(
            Value::Object(text),
            json!({
                "sub": "cust-1",
                "exp": "1795342530",
                "ratio": "1.5",
                "email_verified": "true",
                "cognito:groups": "[staff ops]",
                "nested": "{\"a\":1}",
                "empty": "[]",
            })
        );
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let of = |v: Value| token_scopes(v.as_object().unwrap());
        assert_eq!(
            of(json!({"scope": "orders/admin  openid"})),
            ["orders/admin", "openid"]
        );
        assert_eq!(of(json!({"scp": ["a", "b"]})), ["a", "b"]);
        assert_eq!(of(json!({"scp": "a b"})), ["a", "b"]);
        assert!(of(json!({"sub": "x"})).is_empty());
    }

    #[test]
    fn the_key_is_generated_once_private_and_reused() {
        let dir = temp_dir("key");
        let first = SigningKey::load_or_create(&dir).unwrap();
        let mode = std::fs::metadata(&first.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = SigningKey::load_or_create(&dir).unwrap();
        assert_eq!(first.kid, again.kid);
        let jwks = first.jwks();
        assert_eq!(jwks["keys"][0]["kid"], first.kid.as_str());
        assert_eq!(jwks["keys"][0]["kty"], "RSA");
        assert_eq!(jwks["keys"][0]["alg"], "RS256");
        assert!(jwks["keys"][0].get("d").is_none(), "no private part");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tokens_are_checked_as_api_gateway_checks_them() {
        let dir = temp_dir("verify");
        let key = SigningKey::load_or_create(&dir).unwrap();
        let other_dir = temp_dir("other");
        let other = SigningKey::load_or_create(&other_dir).unwrap();
        let verifier = Verifier::local(&key).unwrap();
        let now = now();
        let customer = claims(&Subject::Customer("cust-1".into()), 600, now);
        let token = key.sign(&customer).unwrap();
        let none: &[String] = &[];

        let ok = verifier
            .authorize(Some(&format!("Bearer {token}")), none)
            .unwrap();
        assert_eq!(ok["jwt"]["claims"]["sub"], "cust-1");
        assert_eq!(ok["jwt"]["claims"]["exp"], (now + 600).to_string());
        assert_eq!(ok["jwt"]["scopes"], Value::Null);
        assert!(verifier.authorize(Some(&token), none).is_ok(), "no prefix");

        let reason = |authorization: Option<&str>| {
            let rejection = verifier.authorize(authorization, none).unwrap_err();
            assert_eq!(rejection.status, 401);
            assert_eq!(rejection.message(), "Unauthorized");
            rejection.reason
        };
        let with = |changes: Value| {
            let mut c = customer.clone();
            for (k, v) in changes.as_object().unwrap() {
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = v.clone();
                }
            }
            format!("Bearer {}", key.sign(&c).unwrap())
        };
        assert!(reason(None).contains("no token"));
        assert!(reason(Some("Bearer ")).contains("no token"));
        assert!(reason(Some("Bearer not.a.jwt")).contains("not a valid JWT"));
        let foreign = other.sign(&customer).unwrap();
        assert!(reason(Some(&foreign)).contains("kid"));
        let forged = other.sign_as(&customer, &key.kid).unwrap();
        assert!(reason(Some(&forged)).contains("signature"));
        let expired = json!({"iat": now - 7200, "exp": now - 3600});
        assert!(reason(Some(&with(expired))).contains("expired"));
        assert!(reason(Some(&with(json!({"exp": null})))).contains("expiry"));
        assert!(reason(Some(&with(json!({"nbf": now + 3600})))).contains("not valid yet"));
        assert!(reason(Some(&with(json!({"iat": now + 3600})))).contains("future"));
        assert!(reason(Some(&with(json!({"iss": "https://elsewhere"})))).contains("issuer"));
        assert!(reason(Some(&with(json!({"iss": null})))).contains("issuer"));
        assert!(reason(Some(&with(json!({"client_id": "someone-else"})))).contains("audience"));
        assert!(reason(Some(&with(json!({"client_id": null})))).contains("audience"));
        // `aud`, when present, decides (client_id is then ignored).
        assert!(verifier
            .authorize(
                Some(&with(json!({"aud": LOCAL_AUDIENCE, "client_id": "x"}))),
                none
            )
            .is_ok());
        assert!(verifier
            .authorize(Some(&with(json!({"aud": ["a", LOCAL_AUDIENCE]}))), none)
            .is_ok());
        assert!(reason(Some(&with(json!({"aud": "other"})))).contains("audience"));
        // A little clock skew is tolerated.
        assert!(verifier
            .authorize(Some(&with(json!({"exp": now - 5, "iat": now + 5}))), none)
            .is_ok());

        // Scopes: one of the route's is enough; otherwise 403.
        let admin = vec![STAFF_SCOPE.to_string()];
        let rejection = verifier
            .authorize(Some(&format!("Bearer {token}")), &admin)
            .unwrap_err();
        assert_eq!((rejection.status, rejection.message()), (403, "Forbidden"));
        assert!(rejection.www_authenticate.contains("insufficient_scope"));
        let staff = key.sign(&claims(&Subject::Staff, 60, now)).unwrap();
        let ok = verifier.authorize(Some(&staff), &admin).unwrap();
        assert_eq!(ok["jwt"]["scopes"], json!([STAFF_SCOPE]));
        assert_eq!(ok["jwt"]["claims"]["sub"], STAFF_SUBJECT);
        let unauthorized = verifier.authorize(None, &admin).unwrap_err();
        assert_eq!(unauthorized.status, 401);
        let expired = verifier
            .authorize(Some(&with(json!({"exp": now - 3600}))), &admin)
            .unwrap_err();
        assert_eq!(
            expired.www_authenticate,
            "Bearer scope=\"orders/admin\" error=\"invalid_token\" error_description=\"the token has expired\""
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn minting_creates_the_key_when_missing() {
        let dir = temp_dir("mint");
        let token = mint(&dir, &Subject::Staff, 60).unwrap();
        let key = SigningKey::load(&key_path(&dir)).unwrap();
        let claims = Verifier::local(&key)
            .unwrap()
            .verify(Some(&token), &[])
            .unwrap();
        assert_eq!(claims["scope"], STAFF_SCOPE);
        assert_eq!(claims["iss"], LOCAL_ISSUER);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
