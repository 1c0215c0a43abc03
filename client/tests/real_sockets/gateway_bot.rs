//! `GET /gateway/bot` against a real HTTP server on 127.0.0.1: a good
//! answer is read and checked, and every bad one (401, 429, malformed
//! JSON, an oversized body, a gateway URL outside the allowed domains) is
//! one clear error after exactly one request — never a retry loop.

use reconnect_client::Token;
use reconnect_client::gateway_bot::{GatewayBotError, GatewayBotRequest, MAX_BODY_BYTES};
use reconnect_policy::{SessionStartLimit, UrlError};
use reconnect_testkit::http_api::{ApiAnswer, ApiServer};

use crate::support::{TOKEN, bounded};

fn request(api: &ApiServer) -> GatewayBotRequest {
    GatewayBotRequest {
        api_base: api.api_base(),
        expected_gateway: "ws://127.0.0.1:9".to_owned(),
        ..GatewayBotRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_answer_gives_the_url_shards_and_limits() {
    bounded(20, async {
        let answer = ApiAnswer::gateway_bot("ws://127.0.0.1:4567", 12, 5_000, 16);
        let api = ApiServer::start(TOKEN, answer).await.unwrap();
        let bot = request(&api).send(&Token::new(TOKEN)).await.unwrap();
        assert_eq!(bot.url, "ws://127.0.0.1:4567");
        assert_eq!(bot.shards, 12);
        assert_eq!(
            bot.session_start_limit,
            SessionStartLimit {
                total: 5_000,
                remaining: 5_000,
                reset_after_ms: 86_400_000,
                max_concurrency: 16
            }
        );
        assert_eq!(api.requests(), (1, 1), "one request, with the bot's token");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_are_one_clear_error_each() {
    bounded(20, async {
        let api = ApiServer::start(TOKEN, ApiAnswer::status(401, r#"{"message":"401: Unauthorized","code":0}"#))
            .await
            .unwrap();
        let token = Token::new(TOKEN);
        let mut cases: Vec<(ApiAnswer, GatewayBotError)> = vec![
            (
                ApiAnswer::status(401, r#"{"message":"401: Unauthorized","code":0}"#),
                GatewayBotError::Unauthorized,
            ),
            (
                ApiAnswer {
                    status: 429,
                    headers: vec![("Retry-After".into(), "3".into())],
                    body: r#"{"message":"You are being rate limited.","retry_after":2.5,"global":true}"#.into(),
                },
                GatewayBotError::RateLimited {
                    retry_after_ms: 2_500,
                    global: true,
                },
            ),
            (
                ApiAnswer {
                    status: 429,
                    headers: vec![("Retry-After".into(), "4".into())],
                    body: "not json".into(),
                },
                GatewayBotError::RateLimited {
                    retry_after_ms: 4_000,
                    global: false,
                },
            ),
            (
                ApiAnswer::status(503, "{}"),
                GatewayBotError::Status { status: 503 },
            ),
            (
                ApiAnswer::status(200, "x".repeat(MAX_BODY_BYTES + 1)),
                GatewayBotError::TooLarge,
            ),
            (
                ApiAnswer::gateway_bot("wss://gateway.evil.example", 1, 1_000, 1),
                GatewayBotError::UrlNotAllowed {
                    url: "wss://gateway.evil.example".into(),
                    reason: UrlError::SchemeMismatch,
                },
            ),
            (
                ApiAnswer::gateway_bot("ws://evil.example:4567", 1, 1_000, 1),
                GatewayBotError::UrlNotAllowed {
                    url: "ws://evil.example:4567".into(),
                    reason: UrlError::HostNotAllowed,
                },
            ),
        ];
        for (n, (answer, expected)) in cases.drain(..).enumerate() {
            api.set_answer(answer.clone());
            let error = request(&api).send(&token).await.unwrap_err();
            assert_eq!(error, expected, "{answer:?}");
            assert!(!error.to_string().contains(TOKEN), "{error}");
            assert_eq!(api.requests().0, n as u64 + 1, "no retry after {error}");
        }
        api.set_answer(ApiAnswer::status(200, r#"{"url": 5}"#));
        assert!(matches!(
            request(&api).send(&token).await,
            Err(GatewayBotError::Malformed(_))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_is_a_transport_error() {
    bounded(20, async {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let error = GatewayBotRequest {
            api_base: format!("http://127.0.0.1:{port}/api/v10"),
            ..GatewayBotRequest::default()
        }
        .send(&Token::new(TOKEN))
        .await
        .unwrap_err();
        assert!(matches!(error, GatewayBotError::Transport(_)), "{error}");
        assert!(!error.to_string().contains(TOKEN), "{error}");
    })
    .await;
}
