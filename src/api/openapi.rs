//! The OpenAPI document's frame, [`ApiDoc`]: title, description and the tags that group the
//! operations (the paths come from each feature's `routes()`), and its post-processing: the
//! guard's 403 on every operation.

use utoipa::OpenApi;

/// Info and tags of the document; a new group of endpoints adds its tag here.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mcc",
        description = "REST API of an mcc node: a peer-to-peer mesh companion on libp2p."
    ),
    tags(
        (name = "node", description = "This node and its peers"),
        (name = "rpc", description = "Echo and RPC to peers"),
        (name = "records", description = "Validated DHT records and DID documents"),
        (name = "services", description = "Services, listeners and HTTP forwarding"),
        (name = "blobs", description = "Content-addressed files with IPFS CIDs"),
        (name = "admission", description = "Certificates, trusted CA and revocations"),
        (name = "streams", description = "Raw byte streams to and from peers (HTTP upgrade)"),
        (name = "routes", description = "Publish/subscribe on routes, only to interested peers"),
    ),
)]
pub(super) struct ApiDoc;

/// Adds the 401 and 403 of [`guard`](super::guard) to every operation but `/healthz`, and the
/// bearer scheme of `--api-token` (Swagger UI's "Authorize" button takes the token; without
/// `--api-token` no token is needed, so the requirement is optional).
pub(super) fn document_forbidden(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    openapi
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "api_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    openapi.security = Some(vec![
        SecurityRequirement::default(),
        SecurityRequirement::new("api_token", Vec::<String>::new()),
    ]);
    for (path, item) in openapi.paths.paths.iter_mut() {
        if path == "/healthz" {
            continue;
        }
        let ops = [
            (&mut item.get, false),
            (&mut item.head, false),
            (&mut item.put, true),
            (&mut item.post, true),
            (&mut item.delete, true),
            (&mut item.patch, true),
        ];
        for (op, changes) in ops {
            let Some(op) = op.as_mut() else { continue };
            let description = if changes {
                "Refused: the Host is not this machine or an --api-hosts name, or the request \
                 comes from a web page whose origin --enable-cors does not allow"
            } else {
                "Refused: the Host is not this machine or an --api-hosts name, or a \
                 cross-site read from a web page whose origin --enable-cors does not allow"
            };
            let responses = &mut op.responses.responses;
            responses.entry("401".to_string()).or_insert_with(|| {
                error_response(
                    "The node runs with --api-token and the request lacks \
                     `Authorization: Bearer <token>`",
                )
            });
            responses
                .entry("403".to_string())
                .or_insert_with(|| error_response(description));
        }
    }
}

/// A documented error answer: `description` with the JSON `{"error": ...}` body.
pub(super) fn error_response(
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::response::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    /// Every route is documented and every documented operation is routed by a feature's
    /// `routes()`: a `routes()` left out of `api::v1`, or a wildcard route without its
    /// hand-listed path, shows up here.
    #[test]
    fn document_lists_every_operation() {
        let (_, doc) = super::super::api();
        let mut ops = Vec::new();
        for (path, item) in &doc.paths.paths {
            let methods = [
                ("get", &item.get),
                ("put", &item.put),
                ("post", &item.post),
                ("delete", &item.delete),
                ("patch", &item.patch),
                ("head", &item.head),
            ];
            for (method, op) in methods {
                let Some(op) = op else { continue };
                ops.push(format!("{method} {path}"));
                let forbidden = op.responses.responses.contains_key("403");
                assert_eq!(forbidden, path != "/healthz", "403 of {method} {path}");
            }
        }
        assert_eq!(
            ops,
            [
                "get /api/v1/addrbook",
                "post /api/v1/addrbook/pin",
                "post /api/v1/addrbook/unpin",
                "get /api/v1/admission",
                "put /api/v1/admission/revocations",
                "get /api/v1/blobs",
                "post /api/v1/blobs",
                "get /api/v1/blobs/{cid}",
                "delete /api/v1/blobs/{cid}",
                "post /api/v1/blobs/{cid}/fetch",
                "get /api/v1/blobs/{cid}/providers",
                "get /api/v1/dids/{did}",
                "put /api/v1/dids/{did}",
                "post /api/v1/echo",
                "get /api/v1/forward/{service}/{path}",
                "get /api/v1/listeners",
                "post /api/v1/listeners",
                "delete /api/v1/listeners/{id}",
                "get /api/v1/node",
                "get /api/v1/peers",
                "post /api/v1/peers",
                "get /api/v1/records/{key}",
                "put /api/v1/records/{key}",
                "get /api/v1/routes",
                "post /api/v1/routes/{route}",
                "get /api/v1/routes/{route}/events",
                "post /api/v1/rpc/{method}",
                "get /api/v1/services",
                "post /api/v1/services",
                "delete /api/v1/services/{name}",
                "get /api/v1/services/{name}/providers",
                "get /api/v1/streams/{name}/connect/{peer}",
                "get /api/v1/streams/{name}/listen",
                "get /healthz",
            ]
        );
    }
}
