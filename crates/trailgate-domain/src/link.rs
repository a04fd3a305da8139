//! Approval links: a URL signed for one approver, bound to one version of one request.
//!
//! The signature is HMAC-SHA256 over the request id, the approver id, the link's expiry and
//! the request's content hash, under a key that only the approval and decision functions can
//! read. Changing any of them (another approver, a later expiry, an edited request) breaks it.
//! The link carries no task token and no secret: at worst it lets its own approver decide.
//! It does carry the content hash it was signed over, so that a forged or altered link is
//! refused on its signature alone, before anything is read from the ledger.

use crate::error::{Error, Result};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The parameters a link carries (query string on GET, hidden form fields on POST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkParams {
    pub request_id: String,
    pub approver_id: String,
    /// Unix seconds after which the link is refused.
    pub expires: i64,
    /// The request's content hash the link was signed over (hex SHA-256).
    pub content_hash: String,
    /// Hex HMAC.
    pub signature: String,
}

/// The HMAC key, at least 32 bytes.
#[derive(Clone)]
pub struct LinkKey(Vec<u8>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even in debug logs.
        f.write_str("LinkKey(<redacted>)")
    }
}

impl LinkKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<LinkKey> {
        let bytes = bytes.into();
        if bytes.len() < 32 {
            return Err(Error::internal(
                "the link signing key is shorter than 32 bytes",
            ));
        }
        Ok(LinkKey(bytes))
    }

    fn mac(
        &self,
        request_id: &str,
        approver_id: &str,
        expires: i64,
        content_hash: &str,
    ) -> Vec<u8> {
        // new_from_slice accepts any key length for HMAC, so this cannot fail.
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in [
            "trailgate-link-v1",
            request_id,
            approver_id,
            &expires.to_string(),
            content_hash,
        ] {
            // Length-prefix every part so that no two different tuples share a byte string.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// Signs a link for `approver_id` on the request with `content_hash`.
    pub fn sign(
        &self,
        request_id: &str,
        approver_id: &str,
        expires: i64,
        content_hash: &str,
    ) -> LinkParams {
        LinkParams {
            request_id: request_id.to_owned(),
            approver_id: approver_id.to_owned(),
            expires,
            content_hash: content_hash.to_owned(),
            signature: hex::encode(self.mac(request_id, approver_id, expires, content_hash)),
        }
    }

    /// Verifies a link's signature over its own fields and its expiry at `now` (unix seconds),
    /// with no ledger read: what a flood of forged links costs is one HMAC each. The caller
    /// then checks that the request still has the link's content hash ([`LinkParams::binds`]).
    pub fn verify_signature(&self, link: &LinkParams, now: i64) -> Result<()> {
        self.verify(link, &link.content_hash, now)
    }

    /// Verifies a link against the request's current content hash at time `now` (unix seconds).
    /// Every failure is `Forbidden` with a reason fit to show the approver.
    pub fn verify(&self, link: &LinkParams, content_hash: &str, now: i64) -> Result<()> {
        let given =
            hex::decode(&link.signature).map_err(|_| Error::forbidden("this link is not valid"))?;
        let expected = self.mac(
            &link.request_id,
            &link.approver_id,
            link.expires,
            content_hash,
        );
        if !bool::from(given.ct_eq(&expected)) {
            return Err(Error::forbidden(
                "this link is not valid: it was altered, or the request changed after it was sent",
            ));
        }
        // Expiry is checked after the signature so that a forged expiry says "not valid".
        if now >= link.expires {
            return Err(Error::forbidden("this link has expired"));
        }
        Ok(())
    }
}

impl LinkParams {
    /// The query string of a GET link.
    pub fn query(&self) -> String {
        format!(
            "a={}&e={}&h={}&s={}",
            encode(&self.approver_id),
            self.expires,
            encode(&self.content_hash),
            self.signature
        )
    }

    /// Whether the link was signed for the request as it is now (`content_hash` recomputed from
    /// the record's fields, never the stored one).
    pub fn binds(&self, content_hash: &str) -> Result<()> {
        if self.content_hash != content_hash {
            return Err(Error::forbidden(
                "this link is not valid: it was altered, or the request changed after it was sent",
            ));
        }
        Ok(())
    }

    /// Reads link parameters from decoded key/value pairs (query string or form body).
    pub fn from_pairs<'a>(
        request_id: &str,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<LinkParams> {
        let (mut approver, mut expires, mut hash, mut signature) = (None, None, None, None);
        for (key, value) in pairs {
            match key {
                "a" => approver = Some(value.to_owned()),
                "e" => expires = value.parse::<i64>().ok(),
                "h" => hash = Some(value.to_owned()),
                "s" => signature = Some(value.to_owned()),
                _ => {}
            }
        }
        match (approver, expires, hash, signature) {
            (Some(approver_id), Some(expires), Some(content_hash), Some(signature))
                if !approver_id.is_empty()
                    && approver_id.len() <= 64
                    && content_hash.len() == 64
                    && signature.len() == 64 =>
            {
                Ok(LinkParams {
                    request_id: request_id.to_owned(),
                    approver_id,
                    expires,
                    content_hash,
                    signature,
                })
            }
            _ => Err(Error::forbidden("this link is incomplete or malformed")),
        }
    }
}

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn key() -> LinkKey {
        LinkKey::new(vec![7u8; 32]).unwrap()
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let link = key().sign("r-1", "bob", 1000, "hash");
        key().verify(&link, "hash", 999).unwrap();
        let err = key().verify(&link, "hash", 1000).unwrap_err();
        assert_eq!(
            (err.kind, err.message.as_str()),
            (ErrorKind::Forbidden, "this link has expired")
        );
    }

    #[test]
    fn tampering_with_any_part_breaks_the_link() {
        let link = key().sign("r-1", "bob", 1000, "hash");
        let mut other_approver = link.clone();
        other_approver.approver_id = "carol".into();
        let mut later = link.clone();
        later.expires = 5000;
        let mut other_request = link.clone();
        other_request.request_id = "r-2".into();
        let mut flipped = link.clone();
        flipped.signature.replace_range(
            0..1,
            if &link.signature[0..1] == "0" {
                "1"
            } else {
                "0"
            },
        );
        for bad in [other_approver, later, other_request, flipped] {
            assert_eq!(
                key().verify(&bad, "hash", 10).unwrap_err().kind,
                ErrorKind::Forbidden
            );
        }
        // The request changed after the link was sent.
        assert!(key().verify(&link, "new-hash", 10).is_err());
        // Another key (a forged link).
        let forged = LinkKey::new(vec![8u8; 32])
            .unwrap()
            .sign("r-1", "bob", 1000, "hash");
        assert!(key().verify(&forged, "hash", 10).is_err());
    }

    #[test]
    fn links_parse_from_their_own_query() {
        let hash = "0f".repeat(32);
        let link = key().sign("r-1", "bob@example.com", 1000, &hash);
        let query = link.query();
        let decoded: Vec<(String, String)> = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            })
            .collect();
        let parsed =
            LinkParams::from_pairs("r-1", decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .unwrap();
        assert_eq!(parsed, link);
        key().verify_signature(&parsed, 999).unwrap();
        parsed.binds(&hash).unwrap();
        assert!(parsed.binds(&"1f".repeat(32)).is_err());
        assert!(LinkParams::from_pairs("r-1", [("a", "bob")]).is_err());
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        assert!(LinkKey::new(vec![1u8; 31]).is_err());
        assert_eq!(format!("{:?}", key()), "LinkKey(<redacted>)");
    }
}
