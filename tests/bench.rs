//! `underpass bench` as a library call: every row it reports comes from traffic it moved. The
//! figures themselves are not judged here (benchmarks are run by hand, see docs/benchmarks.md).

use underpass::bench::{self, BenchOptions, BenchTransport};

#[tokio::test]
async fn an_in_process_bench_reports_a_direct_row_and_each_transport() {
    let opts = BenchOptions {
        transports: vec![
            BenchTransport::Ws4,
            BenchTransport::Ws1,
            BenchTransport::Ws4,
        ],
        bytes: 1 << 20,
        requests: 40,
        http_workers: 4,
        ..BenchOptions::default()
    };
    let report = tokio::time::timeout(std::time::Duration::from_secs(60), bench::run(&opts))
        .await
        .expect("bench finishes")
        .expect("bench succeeds");
    assert_eq!(report.server, None);
    let paths: Vec<&str> = report.rows.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["direct", "ws-striped", "ws"],
        "duplicates measured once"
    );
    for row in &report.rows {
        assert_eq!(row.http_errors, 0, "{row:?}");
        assert!(
            row.single_stream_mib_s > 0.0 && row.multi_stream_mib_s > 0.0,
            "{row:?}"
        );
        assert!(row.requests_per_sec > 0.0 && row.p50_ms > 0.0, "{row:?}");
    }
    assert_eq!(report.rows[1].carriers, Some(4));
    assert_eq!(report.rows[2].carriers, Some(1));
    assert!(report.rows[1].rtt_ms.is_some());
}
