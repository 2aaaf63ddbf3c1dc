//! Service endpoints: local services offered to the mesh, their providers, and listeners that
//! tunnel local connections to a provider.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mcc_admission::Permission;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::types::{ErrorBody, Listener, ListenerRequest, Provider, Service, ServiceRequest};
use super::{ApiError, ApiJson, AppState};

/// The routes of this file with their OpenAPI paths.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_services, post_services))
        .routes(routes!(delete_service))
        .routes(routes!(get_providers))
        .routes(routes!(get_listeners, post_listeners))
        .routes(routes!(delete_listener))
}

/// Local services offered to the mesh.
#[utoipa::path(get, path = "/services", tag = "services",
    responses((status = 200, body = Vec<Service>)))]
async fn get_services(State(s): State<AppState>) -> Json<Vec<Service>> {
    Json(s.node.services().list())
}

/// Registers (or replaces) a local service and announces it in the DHT.
#[utoipa::path(post, path = "/services", tag = "services", request_body = ServiceRequest,
    responses((status = 201, body = Service), (status = 400, body = ErrorBody)))]
async fn post_services(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ServiceRequest>,
) -> Result<(StatusCode, Json<Service>), ApiError> {
    let svc = s.node.services().add(&req.name, &req.address).await?;
    Ok((StatusCode::CREATED, Json(svc)))
}

/// Removes a local service and withdraws its announcement.
#[utoipa::path(delete, path = "/services/{name}", tag = "services",
    params(("name" = String, Path)),
    responses((status = 200, body = Service), (status = 404, body = ErrorBody)))]
async fn delete_service(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Service>, ApiError> {
    Ok(Json(s.node.services().remove(&name).await?))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ProvidersQuery {
    /// Only the provider records this node stores itself, without a network lookup.
    local: Option<bool>,
}

/// Providers of a service: this node first when it offers it, then connected peers by RTT.
#[utoipa::path(get, path = "/services/{name}/providers", tag = "services",
    params(("name" = String, Path), ProvidersQuery),
    responses((status = 200, body = Vec<Provider>), (status = 400, body = ErrorBody),
              (status = 404, description = "Nobody provides the service", body = ErrorBody)))]
async fn get_providers(
    State(s): State<AppState>,
    Path(name): Path<String>,
    query: Result<axum::extract::Query<ProvidersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Provider>>, ApiError> {
    let query = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let found = if query.0.local.unwrap_or(false) {
        s.node.services().stored_providers(&name).await?
    } else {
        s.node.services().providers(&name).await?
    };
    if found.is_empty() {
        // Like any other resource that does not exist (e.g. a service just removed).
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no provider of {name} found"),
        ));
    }
    Ok(Json(found))
}

/// Local listeners forwarding to services in the mesh.
#[utoipa::path(get, path = "/listeners", tag = "services",
    responses((status = 200, body = Vec<Listener>)))]
async fn get_listeners(State(s): State<AppState>) -> Json<Vec<Listener>> {
    Json(s.node.services().listeners())
}

/// Starts a listener: every connection to `address` is tunnelled to a provider of `service`.
#[utoipa::path(post, path = "/listeners", tag = "services", request_body = ListenerRequest,
    responses((status = 201, body = Listener), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn post_listeners(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ListenerRequest>,
) -> Result<(StatusCode, Json<Listener>), ApiError> {
    s.node.admission().may(Permission::ServicesConsume)?;
    let l = s
        .node
        .services()
        .add_listener(&req.service, &req.address, req.peer.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(l)))
}

/// Stops and forgets a listener.
#[utoipa::path(delete, path = "/listeners/{id}", tag = "services",
    params(("id" = String, Path)),
    responses((status = 200, body = Listener), (status = 404, body = ErrorBody)))]
async fn delete_listener(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Listener>, ApiError> {
    Ok(Json(s.node.services().remove_listener(&id)?))
}
