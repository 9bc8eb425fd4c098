//! Which route serves a visitor: 404 for unknown hosts, the root route, hosts without a
//! configured domain, random route names, and single routes, takeover and clusters.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use http::StatusCode;
use underpass::client::{ClientError, ClientOptions, HttpExpose};
use underpass::proto::BindErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_and_unbound_route_are_404_naming_the_host() {
    within(20, async {
        let (port, hits) = counting_app("app").await;
        let demo = demo(port).await;
        let addr = demo.addr();

        for host in [
            "other.org",
            "nobody.example.test",
            "a.demo.example.test",
            "example.test",
        ] {
            let r = get(addr, host, "/").await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{host}");
            assert!(
                r.text().contains("no tunnel for host") && r.text().contains(host),
                "{host}: {}",
                r.text()
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        assert_eq!(get(addr, DEMO_HOST, "/").await.status, StatusCode::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_route_serves_the_domain_itself() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let port = echo_app("root").await;
        let binding = client.expose_http(port, &named("@")).await.unwrap();
        assert_eq!(binding.subdomain(), Some("@"));
        let r = get(addr, "Example.Test:80", "/home").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["app"], "root");
        assert_eq!(r.json()["target"], "/home");
        let r = get(addr, "www.example.test", "/").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_domain_the_first_label_is_the_route() {
    within(20, async {
        let server = server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let port = echo_app("demo").await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        for host in ["demo.anything.local:1234", "demo", "DEMO.other.example"] {
            let r = get(addr, host, "/").await;
            assert_eq!(r.status, StatusCode::OK, "{host}: {}", r.text());
            assert_eq!(seen_one(&r.json(), "host").as_deref(), Some(host));
        }
        for host in ["other.anything.local", "127.0.0.1"] {
            assert_eq!(get(addr, host, "/").await.status, StatusCode::NOT_FOUND);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_route_name_has_the_up_shape_and_works() {
    within(20, async {
        let server = domain_server().await;
        let client = client(&server).await;
        let port = echo_app("app").await;
        let binding = client
            .expose_http(port, &HttpExpose::route(None))
            .await
            .unwrap();
        let name = binding.subdomain().expect("a route name").to_string();
        let suffix = name.strip_prefix("up-").expect("up- prefix");
        assert_eq!(suffix.len(), 10, "{name}");
        assert!(
            suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{name}"
        );
        assert!(
            binding.public_url().is_some_and(|u| u.contains(&name)),
            "{:?}",
            binding.public_url()
        );
        let r = get(server.local_addr(), &format!("{name}.{DOMAIN}"), "/").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());

        // A second random route gets another name.
        let other = client
            .expose_http(port, &HttpExpose::route(None))
            .await
            .unwrap();
        assert_ne!(other.subdomain(), Some(name.as_str()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_route_is_refused_and_takeover_moves_it() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let first = client(&server).await;
        let second = client(&server).await;
        let port_a = echo_app("a").await;
        let port_b = echo_app("b").await;
        let binding_a = first.expose_http(port_a, &named("demo")).await.unwrap();

        match second.expose_http(port_b, &named("demo")).await {
            Err(ClientError::Bind {
                code: BindErrorCode::RouteTaken,
                message,
            }) => assert!(message.contains("demo"), "{message}"),
            other => panic!("expected ROUTE_TAKEN, got {other:?}"),
        }
        let r = get(addr, DEMO_HOST, "/").await;
        assert_eq!(r.json()["app"], "a", "the first holder keeps serving");

        let takeover = HttpExpose {
            takeover: true,
            ..named("demo")
        };
        let binding_b = second.expose_http(port_b, &takeover).await.unwrap();
        let (revoked_id, reason) = first.next_revocation().await.expect("revocation");
        assert_eq!(revoked_id, binding_a.bind_id());
        assert!(!reason.is_empty());
        assert_eq!(first.revoked(binding_a.bind_id()), Some(reason));
        let r = get(addr, DEMO_HOST, "/").await;
        assert_eq!(r.json()["app"], "b", "the route moved");

        // The old holder letting go of its binding does not disturb the new one.
        drop(binding_a);
        let r = get(addr, DEMO_HOST, "/after").await;
        assert_eq!(r.json()["app"], "b");
        drop(binding_b);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_requests_alternate_round_robin() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let one = client(&server).await;
        let two = client_with(ClientOptions::new(server.control_url(), TOKEN).connections(1)).await;
        let _a = one
            .expose_http(echo_app("a").await, &cluster("svc"))
            .await
            .unwrap();
        let _b = two
            .expose_http(echo_app("b").await, &cluster("svc"))
            .await
            .unwrap();
        let mut answers = Vec::new();
        for i in 0..10 {
            let r = get(addr, "svc.example.test", &format!("/{i}")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            answers.push(r.json()["app"].as_str().unwrap().to_string());
        }
        let a = answers.iter().filter(|s| *s == "a").count();
        assert_eq!((a, answers.len() - a), (5, 5), "{answers:?}");
        assert!(
            answers.windows(2).all(|w| w[0] != w[1]),
            "alternates: {answers:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_refuses_mode_and_auth_mismatch() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let holder = client(&server).await;
        let other = client(&server).await;
        let port = echo_app("a").await;
        let _a = holder.expose_http(port, &cluster("svc")).await.unwrap();

        match other.expose_http(port, &named("svc")).await {
            Err(ClientError::Bind {
                code: BindErrorCode::ModeMismatch,
                message,
            }) => assert!(message.contains("cluster"), "{message}"),
            r => panic!("expected MODE_MISMATCH, got {r:?}"),
        }
        let with_auth = HttpExpose {
            basic_auth_password: Some("pw".into()),
            ..cluster("svc")
        };
        match other.expose_http(port, &with_auth).await {
            Err(ClientError::Bind {
                code: BindErrorCode::ModeMismatch,
                message,
            }) => assert!(message.contains("Basic Auth"), "{message}"),
            r => panic!("expected an auth mismatch refusal, got {r:?}"),
        }
        // A single route is likewise refused to a cluster client.
        let _s = holder.expose_http(port, &named("solo")).await.unwrap();
        match other.expose_http(port, &cluster("solo")).await {
            Err(ClientError::Bind {
                code: BindErrorCode::ModeMismatch,
                ..
            }) => {}
            r => panic!("expected MODE_MISMATCH, got {r:?}"),
        }
        // The refusals left the route alone: no auth, one holder.
        let r = get(addr, "svc.example.test", "/").await;
        assert_eq!(r.status, StatusCode::OK);
    })
    .await;
}
