//! A typed HTTP client of the order service's public API (SPEC §3), shared by the order
//! service's tests, the end-to-end suite and `larder bench`.
//!
//! - [`Client`]: base URL plus a `reqwest::Client`, cheap to clone. Two kinds of method: raw
//!   ones ([`Client::get`], [`Client::post`], [`Client::post_order`], ...) answer the
//!   `reqwest::Response` whatever its status, for callers that check status codes and
//!   problem+json bodies; typed ones ([`Client::sign_in`], [`Client::place_order`], ...) check
//!   the status the API answers on success and decode the body, else an [`Error`].
//! - [`views`]: the request and response bodies, mirroring the JSON of `openapi.json`.

pub mod views;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

pub use views::{
    AccessToken, Catalogue, Ingredient, NewOrder, NewOrderLine, Order, OrderId, OrderLine, Product,
    RecipeLine, Rejection, Shipment, ShortageView, StatusChange, User,
};

/// The password [`Client::new_customer`] registers its customers with.
pub const CUSTOMER_PASSWORD: &str = "password-123";

/// What a typed call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be sent, or its body could not be read or decoded.
    #[error("{what}: {source}")]
    Http {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// The API answered another status than the call's success status.
    #[error("{what} answered {status}: {body}")]
    Status {
        what: String,
        status: StatusCode,
        /// The response body as text (a problem+json document, usually).
        body: String,
    },
    /// [`Client::wait_for_status`] gave up.
    #[error("order {id} was not {status} within {within:?} (last seen: {last})")]
    Timeout {
        id: Uuid,
        status: String,
        within: Duration,
        last: String,
    },
}

impl Error {
    /// The HTTP status of a [`Error::Status`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of one order service. Clones share the connection pool.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Arc<str>,
    /// `{base}/order`, built once: [`Client::post_order`] is the bench's measured request.
    order_url: Arc<str>,
}

impl Client {
    /// A client of the service at `base_url` (`http://127.0.0.1:3000`) with a default
    /// `reqwest::Client`.
    pub fn new(base_url: &str) -> Self {
        Self::with_http(reqwest::Client::new(), base_url)
    }

    /// A client of the service at `base_url` sending through `http` (a tuned pool, timeouts).
    pub fn with_http(http: reqwest::Client, base_url: &str) -> Self {
        let base = base_url.trim_end_matches('/');
        Self {
            http,
            base: Arc::from(base),
            order_url: Arc::from(format!("{base}/order")),
        }
    }

    /// The underlying `reqwest::Client`, for requests this client has no method for.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The absolute URL of `path` (`/orders?status=pending`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    // Raw requests: the response, whatever its status.

    /// `GET path` as `token`.
    pub async fn get(&self, token: &str, path: &str) -> reqwest::Result<Response> {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
    }

    /// `POST path` as `token` with `body` as JSON; `Value::Null` sends no body.
    pub async fn post(&self, token: &str, path: &str, body: &Value) -> reqwest::Result<Response> {
        let mut request = self.http.post(self.url(path)).bearer_auth(token);
        if !body.is_null() {
            request = request.json(body);
        }
        request.send().await
    }

    /// `GET path` without a token (`/health`, `/ready`, `/openapi.json`, ...).
    pub async fn get_anonymous(&self, path: &str) -> reqwest::Result<Response> {
        self.http.get(self.url(path)).send().await
    }

    /// `POST /order/{id}/cancel` as `token`, whatever the answer (the typed [`Client::cancel`]
    /// wants a 202).
    pub async fn request_cancel(&self, token: &str, id: Uuid) -> reqwest::Result<Response> {
        self.post(token, &format!("/order/{id}/cancel"), &Value::Null)
            .await
    }

    /// `POST /order/{id}/delivery` as `token`: a courier update to `status` (`dispatched`,
    /// `delivered`), whatever the answer.
    pub async fn request_courier_update(
        &self,
        token: &str,
        id: Uuid,
        status: &str,
    ) -> reqwest::Result<Response> {
        let path = format!("/order/{id}/delivery");
        self.post(token, &path, &json!({ "status": status })).await
    }

    /// `POST path` without a token, with `body` as JSON.
    pub async fn post_anonymous(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> reqwest::Result<Response> {
        self.http.post(self.url(path)).json(body).send().await
    }

    /// `POST /auth/register` of a customer.
    pub async fn register(&self, email: &str, password: &str) -> reqwest::Result<Response> {
        self.post_anonymous(
            "/auth/register",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    /// `POST /auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Result<Response> {
        self.post_anonymous(
            "/auth/login",
            &json!({ "email": email, "password": password }),
        )
        .await
    }

    /// `POST /order` as `token` with `body` (a [`NewOrder`], or any JSON for a test of the
    /// validation) and extra request headers (`Idempotency-Key`, `Prefer`, `X-Request-Id`).
    pub async fn post_order(
        &self,
        token: &str,
        body: &impl Serialize,
        headers: &[(&str, &str)],
    ) -> reqwest::Result<Response> {
        let mut request = self.http.post(&*self.order_url).bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.json(body).send().await
    }

    // Typed calls.

    /// Signs in (`POST /auth/login`, 200) and returns the access token.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<String, Error> {
        let what = || format!("login of {email}");
        let response = self.login(email, password).await.map_err(http(what))?;
        let token: AccessToken = expect(response, StatusCode::OK, what).await?;
        Ok(token.access_token)
    }

    /// Registers a customer (`POST /auth/register`, 201).
    pub async fn register_customer(&self, email: &str, password: &str) -> Result<User, Error> {
        let what = || format!("registration of {email}");
        let response = self.register(email, password).await.map_err(http(what))?;
        expect(response, StatusCode::CREATED, what).await
    }

    /// Registers a customer of a fresh address (`c<uuid>@example.com`, password
    /// [`CUSTOMER_PASSWORD`]) and returns its token.
    pub async fn new_customer(&self) -> Result<String, Error> {
        let email = format!("c{}@example.com", Uuid::new_v4().simple());
        self.register_customer(&email, CUSTOMER_PASSWORD).await?;
        self.sign_in(&email, CUSTOMER_PASSWORD).await
    }

    /// Seeds the merchant's burger catalogue and stock (`POST /order/seed`, 200). A 503 (stock
    /// not answering yet) is an [`Error::Status`]: the caller decides whether to retry.
    pub async fn seed(&self, merchant: &str) -> Result<Catalogue, Error> {
        self.post_json(merchant, "/order/seed", &Value::Null).await
    }

    /// Adds `amount` to an ingredient's stock (`POST /ingredients/{id}/restock`, 200).
    pub async fn restock(
        &self,
        merchant: &str,
        ingredient_id: i64,
        amount: i64,
    ) -> Result<Ingredient, Error> {
        let path = format!("/ingredients/{ingredient_id}/restock");
        self.post_json(merchant, &path, &json!({ "amount": amount }))
            .await
    }

    /// Places an order (`POST /order`, 202: accepted, pending) with extra request headers. An
    /// idempotent replay or a `Prefer: wait` outcome (200) is an [`Error::Status`]: use
    /// [`Client::post_order`] for those.
    pub async fn place_order(
        &self,
        token: &str,
        order: &NewOrder,
        headers: &[(&str, &str)],
    ) -> Result<Order, Error> {
        let what = || "POST /order".to_owned();
        let response = self
            .post_order(token, order, headers)
            .await
            .map_err(http(what))?;
        expect(response, StatusCode::ACCEPTED, what).await
    }

    /// Places an order for one unit of `product_id`, with no extra headers; answers its id.
    pub async fn place_one(&self, token: &str, product_id: i64) -> Result<Uuid, Error> {
        self.place(token, product_id, 1).await
    }

    /// Places an order for `quantity` units of `product_id`, with no extra headers; answers its
    /// id.
    pub async fn place(&self, token: &str, product_id: i64, quantity: i64) -> Result<Uuid, Error> {
        let order = NewOrder::of(product_id, quantity);
        Ok(self.place_order(token, &order, &[]).await?.id)
    }

    /// `GET /order/{id}` (200).
    pub async fn order(&self, token: &str, id: Uuid) -> Result<Order, Error> {
        self.get_json(token, &format!("/order/{id}")).await
    }

    /// `POST /order/{id}/cancel` (202).
    pub async fn cancel(&self, token: &str, id: Uuid) -> Result<Order, Error> {
        let what = || format!("POST /order/{id}/cancel");
        let response = self.request_cancel(token, id).await.map_err(http(what))?;
        expect(response, StatusCode::ACCEPTED, what).await
    }

    /// `GET /ingredients` (200): the merchant's ingredients and their levels.
    pub async fn ingredients(&self, merchant: &str) -> Result<Vec<Ingredient>, Error> {
        self.get_json(merchant, "/ingredients").await
    }

    /// Ingredient name and current level (`stock`), in the order `GET /ingredients` lists them.
    pub async fn levels(&self, merchant: &str) -> Result<Vec<(String, i64)>, Error> {
        let ingredients = self.ingredients(merchant).await?;
        Ok(ingredients.into_iter().map(|i| (i.name, i.stock)).collect())
    }

    /// `GET path` as `token`, expecting 200, decoded as `T` (`serde_json::Value` for any).
    pub async fn get_json<T: DeserializeOwned>(&self, token: &str, path: &str) -> Result<T, Error> {
        let what = || format!("GET {path}");
        let response = self.get(token, path).await.map_err(http(what))?;
        expect(response, StatusCode::OK, what).await
    }

    /// `POST path` as `token` with `body` (`Value::Null` sends none), expecting 200, decoded as
    /// `T` (`serde_json::Value` for any).
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        body: &Value,
    ) -> Result<T, Error> {
        let what = || format!("POST {path}");
        let response = self.post(token, path, body).await.map_err(http(what))?;
        expect(response, StatusCode::OK, what).await
    }

    /// Polls `GET /order/{id}` every 25 ms until the order has `status`, for at most `within`;
    /// returns the order as last read. A failed read ends the wait at once.
    pub async fn wait_for_status(
        &self,
        token: &str,
        id: Uuid,
        status: &str,
        within: Duration,
    ) -> Result<Order, Error> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let order = self.order(token, id).await?;
            if order.status == status {
                return Ok(order);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    id,
                    status: status.to_owned(),
                    within,
                    last: order.status,
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Maps a transport error of the request `what` describes.
fn http(what: impl FnOnce() -> String) -> impl FnOnce(reqwest::Error) -> Error {
    move |source| Error::Http {
        what: what(),
        source,
    }
}

/// Decodes `response` as `T` when it has `status`, else an [`Error::Status`] with its body.
async fn expect<T: DeserializeOwned>(
    response: Response,
    status: StatusCode,
    what: impl FnOnce() -> String,
) -> Result<T, Error> {
    if response.status() != status {
        let actual = response.status();
        return Err(Error::Status {
            what: what(),
            status: actual,
            body: response.text().await.unwrap_or_default(),
        });
    }
    response.json().await.map_err(http(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_the_base_without_its_trailing_slash_and_the_path() {
        let client = Client::new("http://127.0.0.1:3000/");
        assert_eq!(client.base_url(), "http://127.0.0.1:3000");
        assert_eq!(
            client.url("/orders?page=2"),
            "http://127.0.0.1:3000/orders?page=2"
        );
        assert_eq!(&*client.order_url, "http://127.0.0.1:3000/order");
    }
}
