//! The value rules of the API written into its OpenAPI document, so that a client (or a
//! schema-driven tester such as schemathesis) knows what the handlers accept:
//!
//! - patterns and lengths of the names and identifiers in paths and bodies ([`document_rules`]),
//!   each exactly what the handler's parser accepts, or a subset every member of which it
//!   accepts (said so in the rule's comment);
//! - the statuses of a rejected JSON body, the same for every operation that takes one
//!   ([`document_json_body`]).

use utoipa::openapi::{
    OpenApi, RefOr,
    path::{Operation, ParameterIn},
    schema::{Object, Schema},
};

/// A service name (`mcc_forward::validate_name`): 1 to 128 bytes of `a-z 0-9 . _ -`, starting
/// with a letter or digit.
pub const SERVICE_NAME: &str = "^[a-z0-9][a-z0-9._-]*$";
/// Longest service name.
pub const SERVICE_NAME_MAX: usize = mcc_forward::MAX_SERVICE_NAME_LEN;

/// A route name (`mcc_routes::codec::validate_route`): `a-z 0-9 . _ - /`, starting and ending
/// with a letter or digit, no empty segment (`a//b`). A tag has the same rules.
pub const ROUTE_NAME: &str = "^[a-z0-9](?:(?:[a-z0-9._-]|/[a-z0-9._-])*/?[a-z0-9])?$";

/// The base58 alphabet.
const B58: &str = "[1-9A-HJ-NP-Za-km-z]";

/// A CIDv1 in base32 with a sha2-256 digest, raw (`bafkrei…`) or dag-pb (`bafybei…`): the
/// CIDs mcc makes. The first character after the prefix carries the prefix's last two bits
/// (zero), the last one two padding bits (zero). The API also reads other spellings of the
/// same CIDs (CIDv0 `Qm…`, other bases), which the pattern leaves out.
pub fn cid_pattern() -> String {
    "^baf(?:krei|ybei)[a-h][a-z2-7]{50}[aeimquy4]$".to_string()
}

/// An ed25519 peer id (`12D3KooW…`, 52 base58 characters), the kind every mcc node has. The
/// ninth character is kept strictly inside the range the 32-byte keys span, so that every
/// string the pattern allows is a valid peer id (a few valid ones at the range's two ends are
/// left out).
pub fn peer_id_pattern() -> String {
    format!("^12D3KooW[A-HJ-NP-S]{B58}{{43}}$")
}

/// An ed25519 `did:key` (`did:key:z6Mk…`), with the same care as [`peer_id_pattern`].
pub fn did_pattern() -> String {
    format!("^did:key:z6Mk[f-km-v]{B58}{{43}}$")
}

/// A record key as the path of `/records/{key}` carries it (`mcc/hello`; a leading `/` is
/// optional): namespace `mcc` with a non-empty rest of no control characters, or `did` with a
/// DID as [`did_pattern`]. One more rule is left out (a lookahead would make the pattern too
/// hard to generate from): a key under `mcc/revocations/` must end in a CA's peer id.
pub fn record_key_pattern() -> String {
    format!(
        "^/?(?:mcc/[^\\x00-\\x1f\\x7f-\\x9f]+|did/{})$",
        did_pattern().trim_start_matches('^').trim_end_matches('$')
    )
}

/// Longest record key in bytes (the pattern counts characters: see [`record_key_pattern`]).
pub const RECORD_KEY_MAX: usize = mcc_records::MAX_KEY_LEN;

/// A rule for a string: pattern, length bounds, description added to the parameter or
/// property.
struct Rule {
    pattern: String,
    min: usize,
    max: usize,
}

/// The rule of a parameter, by its name, where it is, and the path it is in.
fn param_rule(path: &str, name: &str, place: &ParameterIn) -> Option<Rule> {
    let rule = |pattern: String, min, max| Some(Rule { pattern, min, max });
    if *place == ParameterIn::Query {
        return match name {
            "tag" if path.starts_with("/api/v1/routes/") => {
                rule(ROUTE_NAME.into(), 1, mcc_routes::codec::MAX_TAG_LEN)
            }
            _ => None,
        };
    }
    if *place != ParameterIn::Path {
        return None;
    }
    match name {
        "name" if path.starts_with("/api/v1/services/") => {
            rule(SERVICE_NAME.into(), 1, SERVICE_NAME_MAX)
        }
        "cid" => rule(cid_pattern(), 59, 59),
        "did" => rule(did_pattern(), 56, 56),
        "route" => rule(ROUTE_NAME.into(), 1, mcc_routes::codec::MAX_ROUTE_LEN),
        // Multi-byte characters count once in a pattern but up to 4 times against the byte
        // limit: a quarter of it is safe for any key.
        "key" => rule(record_key_pattern(), 5, RECORD_KEY_MAX / 4),
        _ => None,
    }
}

/// The rule of a property of a request body, by schema and property name.
fn property_rule(schema: &str, property: &str) -> Option<Rule> {
    let rule = |pattern: String, min, max| Some(Rule { pattern, min, max });
    match (schema, property) {
        ("ServiceRequest", "name") | ("ListenerRequest", "service") => {
            rule(SERVICE_NAME.into(), 1, SERVICE_NAME_MAX)
        }
        ("EchoRequest", "peer") | ("RpcRequest", "peer") => rule(peer_id_pattern(), 52, 52),
        _ => None,
    }
}

fn apply(rule: &Rule, object: &mut Object) {
    object.pattern = Some(rule.pattern.clone());
    object.min_length = Some(rule.min);
    object.max_length = Some(rule.max);
}

/// Writes the rules into the document: path parameters and request body properties.
pub(super) fn document_rules(openapi: &mut OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        for op in operations(item) {
            for param in op.parameters.iter_mut().flatten() {
                let RefOr::T(param) = param else { continue };
                let Some(rule) = param_rule(path, &param.name, &param.parameter_in) else {
                    continue;
                };
                if let Some(RefOr::T(Schema::Object(object))) = param.schema.as_mut() {
                    apply(&rule, object);
                }
            }
        }
    }
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    for (name, schema) in components.schemas.iter_mut() {
        let RefOr::T(Schema::Object(object)) = schema else {
            continue;
        };
        for (property, schema) in object.properties.iter_mut() {
            let Some(rule) = property_rule(name, property) else {
                continue;
            };
            // An `Option<String>` too: an object of type `[string, null]`.
            if let RefOr::T(Schema::Object(object)) = schema {
                apply(&rule, object);
            }
        }
    }
}

/// Documents what every JSON body extractor ([`ApiJson`](super::ApiJson)) answers on a body
/// it cannot take: 400 (not JSON), 413 (over [`MAX_BODY`](super::MAX_BODY)), 415 (no
/// `Content-Type: application/json`) and 422 (JSON of the wrong shape).
pub(super) fn document_json_body(openapi: &mut OpenApi) {
    for (_, item) in openapi.paths.paths.iter_mut() {
        for op in operations(item) {
            let json_body = op.request_body.as_ref().is_some_and(
                |b| matches!(b, RefOr::T(b) if b.content.contains_key("application/json")),
            );
            if !json_body {
                continue;
            }
            let responses = &mut op.responses.responses;
            for (status, description) in [
                (
                    "400",
                    "The body is not valid JSON, or a value in it is invalid",
                ),
                ("413", "The body is over the size limit"),
                ("415", "The body is not `Content-Type: application/json`"),
                ("422", "The JSON does not have the body's shape"),
            ] {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| super::openapi::error_response(description));
            }
        }
    }
}

/// The operations of a path item.
pub(super) fn operations(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Position in the base58 alphabet.
    fn rank(c: u8) -> usize {
        let alphabet = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        alphabet.iter().position(|&a| a == c).unwrap_or(usize::MAX)
    }

    /// The base58 strings of the smallest and the largest 32-byte key after `prefix`.
    fn extremes(prefix: &[u8]) -> (String, String) {
        let encode = |fill: u8| {
            let mut bytes = prefix.to_vec();
            bytes.extend([fill; 32]);
            bs58::encode(bytes).into_string()
        };
        (encode(0), encode(0xff))
    }

    /// Every string the patterns allow is in the span of real keys: the character the pattern
    /// narrows lies strictly between the extremes', and the lengths match.
    #[test]
    fn peer_id_and_did_patterns_stay_inside_the_key_space() {
        // An ed25519 peer id: identity multihash of the protobuf public key.
        let (low, high) = extremes(&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
        assert!(low.starts_with("12D3KooW") && high.starts_with("12D3KooW"));
        assert_eq!((low.len(), high.len()), (52, 52));
        assert!(peer_id_pattern().contains("12D3KooW[A-HJ-NP-S]"));
        assert!(rank(low.as_bytes()[8]) < rank(b'A'));
        assert!(rank(high.as_bytes()[8]) > rank(b'S'));

        // A did:key: multicodec ed25519-pub (0xed 0x01) and the key, base58btc after `z`.
        let (low, high) = extremes(&[0xed, 0x01]);
        assert!(low.starts_with("6Mk") && high.starts_with("6Mk"));
        assert_eq!((low.len(), high.len()), (47, 47));
        assert!(did_pattern().contains("z6Mk[f-km-v]"));
        assert!(rank(low.as_bytes()[3]) < rank(b'f'));
        assert!(rank(high.as_bytes()[3]) > rank(b'v'));
        // A real one has the pattern's length.
        let did = format!("did:key:z{high}");
        assert_eq!(did.len(), "did:key:z6Mk".len() + 1 + 43);
        assert_eq!(did.len(), 56);
    }

    /// The CIDs mcc makes have the pattern's prefix, length and padding.
    #[test]
    fn cids_mcc_makes_have_the_pattern_shape() {
        for codec in [mcc_blobs::RAW, mcc_blobs::DAG_PB] {
            for data in [&b""[..], b"a", b"hello world"] {
                let cid = mcc_blobs::cid_of(codec, data).to_string();
                assert_eq!(cid.len(), 59, "{cid}");
                assert!(cid.starts_with("bafkrei") || cid.starts_with("bafybei"));
                assert!(matches!(cid.as_bytes()[7], b'a'..=b'h'), "{cid}");
                assert!(b"aeimquy4".contains(&cid.as_bytes()[58]), "{cid}");
            }
        }
        assert!(cid_pattern().starts_with("^baf(?:krei|ybei)[a-h]"));
    }
}
