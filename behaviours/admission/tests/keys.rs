use mcc_admission::{Base64Error, KeyError, keys};

#[test]
fn private_key_round_trip() {
    let k = keys::generate();
    let text = keys::private_key_to_base64(&k).unwrap();
    let back = keys::private_key_from_base64(&format!("\n{text}\n")).unwrap();
    assert_eq!(back.public(), k.public());
    // Same bytes as the node's identity.key, in base64.
    assert_eq!(
        keys::private_key_from_base64(&text)
            .unwrap()
            .to_protobuf_encoding()
            .unwrap(),
        k.to_protobuf_encoding().unwrap()
    );
}

#[test]
fn bare_ed25519_secret_is_accepted() {
    let k = keys::to_ed25519(&keys::generate()).unwrap();
    let secret = k.secret();
    let text = base64_of(secret.as_ref());
    let back = keys::private_key_from_base64(&text).unwrap();
    assert_eq!(keys::to_ed25519(&back).unwrap().public(), k.public());
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn bad_private_keys() {
    assert!(matches!(
        keys::private_key_from_base64(""),
        Err(KeyError::Base64(Base64Error::Empty))
    ));
    assert!(matches!(
        keys::private_key_from_base64("@@@@"),
        Err(KeyError::Base64(Base64Error::Invalid(_)))
    ));
    assert!(matches!(
        keys::private_key_from_base64(&base64_of(&[1, 2, 3, 4, 5])),
        Err(KeyError::Invalid(_))
    ));
    assert!(matches!(
        keys::private_key_from_base64(&"A".repeat(10_000)),
        Err(KeyError::Base64(Base64Error::TooLarge { .. }))
    ));
}
