//! Routes events: interest changes, logged. Messages never come here: they go from the
//! connection tasks straight to the subscriptions (`mcc_routes`).

pub(super) fn on_event(event: mcc_routes::Event) {
    match event {
        mcc_routes::Event::InterestAdded { peer, route, tag } => {
            tracing::debug!(%peer, %route, ?tag, "routes: peer interested");
        }
        mcc_routes::Event::InterestRemoved {
            peer,
            route,
            expired,
        } => {
            tracing::debug!(%peer, %route, expired, "routes: peer no longer interested");
        }
        other => tracing::debug!("routes: {other:?}"),
    }
}
