use mcc_admission::{
    MAX_LABEL_LEN, Permission, PermissionError, Permissions, normalize_label,
    normalize_label_or_random, random_label,
};

#[test]
fn parse_and_display_each_permission() {
    for p in Permission::ALL {
        assert_eq!(p.to_string().parse::<Permission>().unwrap(), p);
    }
    assert_eq!(
        "services:provide".parse::<Permission>(),
        Ok(Permission::ServicesProvide)
    );
    assert_eq!(" RPC:CALL ".parse::<Permission>(), Ok(Permission::RpcCall));
    let err = "rpc:cal".parse::<Permission>().unwrap_err();
    assert_eq!(err, PermissionError("rpc:cal".into()));
    assert!(err.to_string().contains("unknown permission"));
    assert!(err.to_string().contains("records:write"));
}

#[test]
fn parse_sets() {
    let p: Permissions = "services:provide, rpc:call records:write,,"
        .parse()
        .unwrap();
    assert_eq!(p.len(), 3);
    assert!(p.allows(Permission::ServicesProvide));
    assert!(p.allows(Permission::RpcCall));
    assert!(p.allows(Permission::RecordsWrite));
    assert!(!p.allows(Permission::BlobsSeed));
    assert!(!p.allows(Permission::All));
    assert_eq!(p.to_string(), "services:provide,records:write,rpc:call");
    assert_eq!(p.to_string().parse::<Permissions>().unwrap(), p);
    assert!("".parse::<Permissions>().unwrap().is_empty());
    assert!("rpc:call,fly".parse::<Permissions>().is_err());
}

#[test]
fn all_covers_everything() {
    let p: Permissions = "all".parse().unwrap();
    for q in Permission::ALL {
        assert!(p.allows(q), "{q}");
    }
    assert!(p.contains(Permission::All));
    assert!(!p.contains(Permission::RpcCall));
    assert_eq!(p, Permissions::all());
    let mut q = Permissions::new();
    q.insert(Permission::BlobsSeed);
    assert!(q.allows(Permission::BlobsSeed));
    assert_eq!(q.iter().collect::<Vec<_>>(), [Permission::BlobsSeed]);
}

#[test]
fn label_rules() {
    assert_eq!(normalize_label("My-Node_01!").as_deref(), Some("mynode01"));
    assert_eq!(
        normalize_label("  Kitchen Pi 3 ").as_deref(),
        Some("kitchenpi3")
    );
    assert_eq!(normalize_label("Ünïcode-Ω").as_deref(), Some("ünïcodeω"));
    assert_eq!(normalize_label("東京-Node").as_deref(), Some("東京node"));
    assert_eq!(normalize_label(""), None);
    assert_eq!(normalize_label("--- !!"), None);
}

#[test]
fn label_cut_on_char_boundary() {
    assert_eq!(
        normalize_label(&"a".repeat(40)).unwrap().len(),
        MAX_LABEL_LEN
    );
    assert_eq!(normalize_label(&"ä".repeat(20)).unwrap(), "ä".repeat(15));
    let odd = normalize_label(&format!("a{}", "ä".repeat(20))).unwrap();
    assert_eq!(odd.len(), 29);
    // Three-byte characters: ten fit exactly.
    assert_eq!(normalize_label(&"東".repeat(12)).unwrap(), "東".repeat(10));
}

#[test]
fn random_labels() {
    let l = random_label();
    assert_eq!(normalize_label(&l).as_deref(), Some(l.as_str()));
    assert_ne!(random_label(), random_label());
    assert_eq!(normalize_label_or_random(Some("A b")), "ab");
    assert!(normalize_label_or_random(Some("!!")).starts_with("node"));
    assert!(normalize_label_or_random(None).starts_with("node"));
}
