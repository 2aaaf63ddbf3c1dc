//! Unit tests of the address book: learning, backoff, persistence.

use super::*;

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

#[test]
fn backoff_grows_by_one_plus_multiplier_and_is_capped() {
    let b = Backoff::default();
    let mut wait = 0;
    let mut seen = Vec::new();
    for _ in 0..7 {
        wait = b.next(wait);
        seen.push(wait);
    }
    assert_eq!(seen, vec![1000, 2500, 6250, 15625, 39062, 60000, 60000]);
}

#[test]
fn failures_back_off_success_resets_and_non_persistent_entries_drop() {
    let mut book = AddrBook::in_memory();
    let (a, p) = (PeerId::random(), PeerId::random());
    book.learn(a, &[addr("/ip4/127.0.0.1/tcp/1")], Source::Boot);
    book.learn(p, &[addr("/ip4/127.0.0.1/tcp/2")], Source::Manual);
    book.set_persistent(p, true);
    let b = Backoff {
        max_attempts: 3,
        ..Backoff::default()
    };
    assert_eq!(
        book.failed(&a, 0, &b),
        Failure::BackedOff { backoff_ms: 1000 }
    );
    assert!(book.due(500, |_| false).iter().all(|e| e.peer_id != a));
    assert!(book.due(1000, |_| false).iter().any(|e| e.peer_id == a));
    book.succeeded(a, 5);
    assert_eq!(book.get(&a).unwrap().failed, 0);
    // A connection that closes at once delays the redial more each time.
    let short = Duration::from_secs(1);
    let stable = Duration::from_secs(60);
    book.disconnected(&a, short, stable, 0, &b);
    assert_eq!(book.get(&a).unwrap().next_dial_unix_ms, 2000);
    book.disconnected(&a, short, stable, 0, &b);
    assert_eq!(book.get(&a).unwrap().next_dial_unix_ms, 4000);
    book.disconnected(&a, stable, stable, 0, &b);
    assert_eq!(book.get(&a).unwrap().next_dial_unix_ms, 0);
    assert_eq!(book.get(&a).unwrap().backoff_ms, 0);
    for _ in 0..2 {
        book.failed(&a, 0, &b);
    }
    assert_eq!(book.failed(&a, 0, &b), Failure::Dropped);
    assert!(book.get(&a).is_none());
    for _ in 0..20 {
        book.failed(&p, 0, &b);
    }
    assert_eq!(book.get(&p).unwrap().backoff_ms, 60_000);
    assert_eq!(book.get(&p).unwrap().failed, 20);
}

#[test]
fn addresses_are_newest_first_deduplicated_and_bounded() {
    let mut book = AddrBook::in_memory();
    let p = PeerId::random();
    let relayed = addr(&format!(
        "/ip4/127.0.0.1/tcp/9/p2p/{}/p2p-circuit",
        PeerId::random()
    ));
    book.learn(p, &[addr("/ip4/127.0.0.1/tcp/1")], Source::Kad);
    book.learn(
        p,
        &[
            addr(&format!("/ip4/127.0.0.1/tcp/2/p2p/{p}")),
            relayed.clone(),
        ],
        Source::Pex,
    );
    let e = book.get(&p).unwrap();
    assert_eq!(e.addrs[0], addr("/ip4/127.0.0.1/tcp/2"));
    assert_eq!(e.addrs[1], relayed);
    assert_eq!(e.sources, vec![Source::Kad, Source::Pex]);
    for i in 0..40 {
        book.learn(
            p,
            &[addr(&format!("/ip4/127.0.0.1/tcp/{}", 100 + i))],
            Source::Kad,
        );
    }
    assert_eq!(book.get(&p).unwrap().addrs.len(), MAX_ADDRS);
}

#[test]
fn a_full_book_evicts_the_worst_non_persistent_entry() {
    let mut book = AddrBook::in_memory();
    let pinned = PeerId::random();
    book.learn(pinned, &[], Source::Manual);
    book.set_persistent(pinned, true);
    let good = PeerId::random();
    book.learn(good, &[], Source::Kad);
    book.succeeded(good, 10 * 60_000);
    while book.len() < MAX_ENTRIES {
        book.learn(PeerId::random(), &[], Source::Kad);
    }
    book.learn(PeerId::random(), &[], Source::Pex);
    assert_eq!(book.len(), MAX_ENTRIES);
    assert!(book.get(&pinned).is_some());
    assert!(book.get(&good).is_some());
}

#[test]
fn the_book_survives_a_reload_and_a_bad_file_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let mut book = AddrBook::load(dir.path());
    let p = PeerId::random();
    book.learn(p, &[addr("/ip4/127.0.0.1/tcp/7")], Source::Boot);
    book.set_persistent(p, true);
    book.failed(&p, 1000, &Backoff::default());
    book.save_if_dirty().unwrap();
    let again = AddrBook::load(dir.path());
    let e = again.get(&p).unwrap();
    assert!(e.persistent);
    assert_eq!(e.failed, 1);
    // Due at once after a restart.
    assert_eq!(e.next_dial_unix_ms, 0);

    std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
    let empty = AddrBook::load(dir.path());
    assert!(empty.is_empty());
    assert!(dir.path().join("addrbook.json.bad").exists());
}

#[test]
fn the_best_entries_come_first() {
    let mut book = AddrBook::in_memory();
    let (old, recent, app) = (PeerId::random(), PeerId::random(), PeerId::random());
    for p in [old, recent, app] {
        book.learn(p, &[addr("/ip4/127.0.0.1/tcp/1")], Source::Kad);
    }
    book.succeeded(old, 60_000);
    book.succeeded(recent, 600_000);
    book.set_same_app(&app);
    let order: Vec<PeerId> = book.due(0, |_| false).iter().map(|e| e.peer_id).collect();
    assert_eq!(order, vec![app, recent, old]);
}
