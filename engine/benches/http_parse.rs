//! HTTP/1.1 request heads through `sluice_engine::services::http_parse`'s
//! streaming parser, as the HTTP service feeds it: `wrk`'s minimal request,
//! curl's, and a browser's (long User-Agent, Accept and Cookie values, the
//! bulk of a real head). Throughput is bytes; each iteration parses one
//! whole request on a parser kept across iterations (keep-alive).
#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_engine::services::http_parse::{Event, Limits, Parser};
use std::hint::black_box;

const WRK: &[u8] = b"GET / HTTP/1.1\r\nHost: 198.18.0.2:80\r\n\r\n";
const CURL: &[u8] = b"GET / HTTP/1.1\r\nHost: 198.18.0.2\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
const BROWSER: &[u8] = b"GET /static/app/main.3f9a1c.js?v=20261201 HTTP/1.1\r\n\
Host: www.example.test\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Accept-Language: en-GB,en;q=0.7,de;q=0.3\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.test/articles/2026/12/kernel-bypass-tcp\r\n\
Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; consent=1; _ga=GA1.2.1234567890.1796201443\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\r\n";

fn http_parse(c: &mut Criterion) {
    let lim = Limits { max_head: 8192, max_body: 1 << 20 };
    let mut g = c.benchmark_group("http_parse");
    for (name, req) in [("wrk", WRK), ("curl", CURL), ("browser", BROWSER)] {
        let mut p = Parser::default();
        let (used, ev) = p.feed(req, &lim);
        assert_eq!(used, req.len(), "{name}: one whole request");
        assert!(matches!(ev, Some(Event::Request(_))), "{name}: {ev:?}");
        g.throughput(Throughput::Bytes(req.len() as u64));
        g.bench_with_input(BenchmarkId::new("request", name), &req, |b, req| {
            b.iter(|| black_box(p.feed(black_box(req), &lim)))
        });
    }
    g.finish();
}

criterion_group!(benches, http_parse);
criterion_main!(benches);
