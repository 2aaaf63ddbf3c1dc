//! Bitswap events: logged. Blocks never come here: they go from the connection tasks to the
//! block store and to the wants of `blobs::Blobs` (`mcc_bitswap`).

pub(super) fn on_event(event: mcc_bitswap::Event) {
    match event {
        mcc_bitswap::Event::UnwantedBlock { peer, cid } => {
            tracing::debug!(%peer, ?cid, "bitswap: peer sent a block that was not wanted");
        }
        mcc_bitswap::Event::StreamDropped { peer, error } => {
            tracing::debug!(%peer, "bitswap: inbound stream dropped: {error}");
        }
        other => tracing::debug!("bitswap: {other:?}"),
    }
}
