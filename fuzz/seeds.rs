//! Writes the kept seed corpus: a few small valid inputs per fuzz target, made by the crates'
//! own encoders, into `<dir>/<target>/seed-<n>` (`fuzz/run.sh --seeds` runs it).

use std::{fs, path::Path};

use libp2p::{PeerId, identity::ed25519};
use mcc_admission::{
    Certificate, CertificateFields, CertificateRequest, Permission, Permissions, RevocationFields,
    RevocationList, keys::peer_id_of,
};
use mcc_blobs::{DAG_PB, RAW, cid_of, unixfs};
use mcc_records::did::{self, SignedDocument};

fn key(seed: u8) -> ed25519::Keypair {
    match ed25519::SecretKey::try_from_bytes([seed; 32]) {
        Ok(secret) => ed25519::Keypair::from(secret),
        Err(e) => panic!("a 32-byte secret key: {e}"),
    }
}

/// `pick` followed by `bytes`: the first byte of most targets chooses the decoder.
fn picked(pick: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![pick];
    out.extend_from_slice(bytes);
    out
}

/// `len (u16 BE) | bytes`.
fn framed16(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let dir = Path::new(&dir);
    let write = |target: &str, seeds: Vec<Vec<u8>>| -> std::io::Result<()> {
        let sub = dir.join(target);
        fs::create_dir_all(&sub)?;
        for (i, seed) in seeds.iter().enumerate() {
            fs::write(sub.join(format!("seed-{i}")), seed)?;
        }
        Ok(())
    };

    write(
        "rpc_codec",
        vec![
            picked(0, br#"{"method":"echo","params":{"hello":"world"}}"#),
            picked(0, br#"{"method":"add"}"#),
            picked(1, br#"{"result":[1,2.5,"x",null,true]}"#),
            picked(
                1,
                br#"{"error":{"code":"method_not_found","message":"no such method"}}"#,
            ),
        ],
    )?;

    write(
        "forward_handshake",
        vec![
            picked(0, b"\x01\x03web"),
            picked(0, b"\x01\x0dmy-service.v2"),
            picked(1, b"\x00\x00\x00"),
            picked(1, b"\x02\x00\x0dno such thing"),
        ],
    )?;

    let block = b"hello blobs".to_vec();
    let raw = cid_of(RAW, &block);
    let mut requests = vec![0];
    requests.extend(mcc_blobs::transfer::fuzzing::encode_request(&raw));
    requests.extend(mcc_blobs::transfer::fuzzing::encode_request(&cid_of(
        DAG_PB, b"x",
    )));
    let response = |status: u8, body: &[u8]| {
        let mut out = vec![1, status];
        out.extend((body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    };
    write(
        "blobs_wire",
        vec![
            requests,
            response(0, &block),
            response(1, b"not found"),
            response(2, b"busy"),
        ],
    )?;

    let ca_key = key(1);
    let node_key = key(2);
    let ca = Certificate::new_ca(&ca_key, "ca", 1_000, 2_000_000_000)?;
    let mut permissions = Permissions::new();
    permissions.insert(Permission::RpcCall);
    let request = CertificateRequest::sign(&node_key, "laptop", permissions, 1_700_000_000)?;
    let cert = Certificate::sign(
        &ca_key,
        CertificateFields::from_request(&request, 1_000, 2_000_000_000),
    )?;
    let mut fields = RevocationFields {
        sequence: 3,
        issued_at: 1_700_000_000,
        ..RevocationFields::default()
    };
    fields.serials.insert(cert.serial());
    fields
        .peers
        .insert(PeerId::from(libp2p::identity::PublicKey::from(
            key(3).public(),
        )));
    let list = RevocationList::sign(&ca_key, fields)?;
    let empty_list = RevocationList::sign(&ca_key, RevocationFields::default())?;
    write(
        "admission_cert",
        vec![
            picked(0, &ca.to_bytes()),
            picked(0, &cert.to_bytes()),
            picked(1, cert.to_base64().as_bytes()),
        ],
    )?;
    write(
        "admission_request",
        vec![
            picked(0, &request.to_bytes()),
            picked(1, request.to_base64().as_bytes()),
        ],
    )?;
    write(
        "admission_revocation",
        vec![
            picked(0, &list.to_bytes()),
            picked(0, &empty_list.to_bytes()),
            picked(1, list.to_base64().as_bytes()),
        ],
    )?;
    let mut cert_response = vec![1, 0];
    cert_response.extend(framed16(&cert.to_bytes()));
    let mut refused = vec![1, 1];
    refused.extend(framed16(b"not admitted"));
    write(
        "admission_codec",
        vec![
            picked(0, &framed16(&cert.to_bytes())),
            cert_response,
            refused,
        ],
    )?;

    let did = did::did_from_public(&node_key.public());
    let document = SignedDocument::sign(&node_key, did::default_document(&did), 7)?;
    let record = |key: &str, value: &[u8]| {
        let mut out = vec![key.len() as u8];
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(value);
        out
    };
    let ca_peer = peer_id_of(&ca_key.public());
    write(
        "records_validate",
        vec![
            record("/mcc/hello", b"world"),
            record(&format!("/did/{did}"), &document.to_bytes()),
            record(&mcc_records::revocations_key(&ca_peer), &list.to_bytes()),
        ],
    )?;
    write(
        "did_document",
        vec![document.to_bytes(), did.clone().into_bytes()],
    )?;

    // A two-level DAG of small leaves (real files have 1 MiB leaves; the walk is the same).
    let leaves: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
    let node_of = |children: &[(mcc_blobs::Cid, u64, u64)]| unixfs::Node {
        links: children
            .iter()
            .map(|&(cid, tsize, _)| unixfs::Link { cid, tsize })
            .collect(),
        filesize: children.iter().map(|c| c.2).sum(),
        blocksizes: children.iter().map(|c| c.2).collect(),
    };
    let leaf = |data: &Vec<u8>| (cid_of(RAW, data), data.len() as u64, data.len() as u64);
    let left = unixfs::encode(&node_of(&[leaf(&leaves[0]), leaf(&leaves[1])]));
    let right = unixfs::encode(&node_of(&[
        leaf(&leaves[2]),
        leaf(&leaves[3]),
        leaf(&leaves[0]),
    ]));
    let size = |encoded: &Vec<u8>| unixfs::decode(encoded).map(|n| n.filesize);
    let root = unixfs::encode(&node_of(&[
        (cid_of(DAG_PB, &left), left.len() as u64, size(&left)?),
        (cid_of(DAG_PB, &right), right.len() as u64, size(&right)?),
    ]));
    let flat = unixfs::encode(&node_of(&[leaf(&leaves[1]), leaf(&leaves[2])]));
    let dag = |blocks: &[&Vec<u8>]| blocks.iter().flat_map(|b| framed16(b)).collect::<Vec<u8>>();
    write("unixfs_decode", vec![root.clone(), flat.clone()])?;
    write("dag_pb_links", vec![root.clone(), flat.clone()])?;
    write(
        "unixfs_dag",
        vec![
            dag(&[
                &root, &left, &right, &leaves[0], &leaves[1], &leaves[2], &leaves[3],
            ]),
            dag(&[&flat, &leaves[1], &leaves[2]]),
        ],
    )?;

    let peers = vec![
        mcc_pex::PeerRecord {
            peer_id: ca_peer,
            addrs: vec![
                "/ip4/127.0.0.1/tcp/4001".parse()?,
                "/ip6/::1/udp/4001/quic-v1".parse()?,
            ],
        },
        mcc_pex::PeerRecord {
            peer_id: peer_id_of(&node_key.public()),
            addrs: vec!["/dns4/example.invalid/tcp/1".parse()?],
        },
    ];
    write(
        "pex_codec",
        vec![
            picked(0, &mcc_pex::codec::encode(&peers, 4)),
            picked(1, b"{}"),
        ],
    )?;

    use mcc_routes::codec;
    let interest = codec::encode_interest("sensors/temp", Some("celsius"), 60);
    let message = codec::encode_message("sensors/temp", 1, 1_700_000_000_000, b"21.5");
    let withdraw = codec::encode_withdraw("sensors/temp");
    let stream = [&interest[..], &message[..], &withdraw[..]].concat();
    write(
        "routes_frame",
        vec![interest.to_vec(), message.to_vec(), stream],
    )?;

    use mcc_bitswap::codec::{self as bs, Prefix};
    let data = b"hello bitswap".to_vec();
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(&data)
    };
    let mh = mcc_bitswap::Multihash::wrap(0x12, &digest)?;
    let cid = mcc_bitswap::Cid::new_v1(0x55, mh);
    let want = bs::Message {
        wantlist: Some(bs::Wantlist {
            entries: vec![bs::Entry {
                block: cid.to_bytes().into(),
                priority: 1,
                cancel: false,
                want_type: 1,
                send_dont_have: true,
            }],
            full: false,
        }),
        ..Default::default()
    };
    let block = bs::Message {
        wantlist: Some(bs::Wantlist::default()),
        payload: vec![bs::Block {
            prefix: Prefix::of(&cid).to_bytes(),
            data: data.clone().into(),
        }],
        block_presences: vec![bs::BlockPresence {
            cid: cid.to_bytes().into(),
            r#type: 1,
        }],
        ..Default::default()
    };
    let body = |m: &bs::Message| {
        let frame = bs::encode(m);
        bs::take_varint(&frame).map(|(_, b)| b.to_vec()).unwrap_or_default()
    };
    write(
        "bitswap_message",
        vec![body(&want), body(&block), bs::encode(&block).to_vec()],
    )?;
    Ok(())
}
