//! Load generator for `scripts/bench-s3.sh`: an S3 client that signs each request as a
//! SigV4 presigned URL (UNSIGNED-PAYLOAD, so the client spends no CPU hashing bodies) and
//! drives the endpoint over HTTP/1.1.
//!
//!   s3bench put-large <endpoint> <bucket> <key> <file> <access-key> <secret>
//!   s3bench get-large <endpoint> <bucket> <key> <access-key> <secret>
//!   s3bench put-multipart <endpoint> <bucket> <key> <file> <part-mib> <concurrency> <access-key> <secret>
//!   s3bench small <endpoint> <bucket> <count> <size> <concurrency> <access-key> <secret>
//!
//! Prints one line of `name=value` figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

fn url(endpoint: &str, method: &str, bucket: &str, key: &str, access: &str, secret: &str) -> String {
    roost_control::presign::presign_url(
        endpoint,
        "us-east-1",
        access,
        secret,
        method,
        bucket,
        key,
        chrono::Utc::now(),
        3600,
    )
    .expect("sign")
}

fn url_q(
    endpoint: &str,
    method: &str,
    bucket: &str,
    key: &str,
    q: &[(&str, &str)],
    access: &str,
    secret: &str,
) -> String {
    roost_control::presign::presign_url_with_query(
        endpoint,
        "us-east-1",
        access,
        secret,
        method,
        bucket,
        key,
        q,
        chrono::Utc::now(),
        3600,
    )
    .expect("sign")
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).expect("tag") + open.len();
    &text[start..start + text[start..].find(close).expect("closing tag")]
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    roost_client::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    match args.get(1).map(String::as_str) {
        Some("put-large") => {
            let (endpoint, bucket, key, file, access, secret) =
                (&args[2], &args[3], &args[4], &args[5], &args[6], &args[7]);
            let len = std::fs::metadata(file).unwrap().len();
            let f = tokio::fs::File::open(file).await.unwrap();
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 1 << 20));
            let started = Instant::now();
            let resp = http
                .put(url(endpoint, "PUT", bucket, key, access, secret))
                .header("content-length", len)
                .body(body)
                .send()
                .await
                .unwrap();
            let secs = started.elapsed().as_secs_f64();
            assert!(
                resp.status().is_success(),
                "PUT failed: {} {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
            println!("bytes={len} seconds={secs:.3} mib_per_s={:.1}", len as f64 / secs / 1048576.0);
        }
        Some("put-multipart") => {
            let (endpoint, bucket, key, file) = (args[2].clone(), args[3].clone(), args[4].clone(), &args[5]);
            let part_size: usize = args[6].parse::<usize>().unwrap() << 20;
            let concurrency: usize = args[7].parse().unwrap();
            let (access, secret) = (args[8].clone(), args[9].clone());
            let data = bytes::Bytes::from(std::fs::read(file).unwrap());
            let started = Instant::now();
            let created = http
                .post(url_q(&endpoint, "POST", &bucket, &key, &[("uploads", "")], &access, &secret))
                .send()
                .await
                .unwrap();
            assert!(created.status().is_success(), "create: {}", created.status());
            let upload_id = between(&created.text().await.unwrap(), "<UploadId>", "</UploadId>").to_string();
            let parts: Vec<(usize, bytes::Bytes)> = data
                .chunks(part_size)
                .enumerate()
                .map(|(i, _)| (i + 1, data.slice(i * part_size..((i + 1) * part_size).min(data.len()))))
                .collect();
            let next = Arc::new(std::sync::Mutex::new(parts.into_iter()));
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (http, next, endpoint, bucket, key, upload_id, access, secret) = (
                    http.clone(),
                    next.clone(),
                    endpoint.clone(),
                    bucket.clone(),
                    key.clone(),
                    upload_id.clone(),
                    access.clone(),
                    secret.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let mut etags = Vec::new();
                    loop {
                        let Some((n, body)) = next.lock().unwrap().next() else { break };
                        let number = n.to_string();
                        let q = [("partNumber", number.as_str()), ("uploadId", upload_id.as_str())];
                        let resp = http
                            .put(url_q(&endpoint, "PUT", &bucket, &key, &q, &access, &secret))
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        assert!(resp.status().is_success(), "part {n}: {}", resp.status());
                        etags.push((n, resp.headers()["etag"].to_str().unwrap().to_string()));
                    }
                    etags
                }));
            }
            let mut etags = Vec::new();
            for t in tasks {
                etags.extend(t.await.unwrap());
            }
            etags.sort();
            let xml: String = etags
                .iter()
                .map(|(n, e)| format!("<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"))
                .collect();
            let body = format!("<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>");
            let done = http
                .post(url_q(&endpoint, "POST", &bucket, &key, &[("uploadId", upload_id.as_str())], &access, &secret))
                .body(body)
                .send()
                .await
                .unwrap();
            let status = done.status();
            let text = done.text().await.unwrap();
            assert!(status.is_success() && text.contains("<ETag>"), "complete: {status} {text}");
            let secs = started.elapsed().as_secs_f64();
            let len = data.len() as f64;
            println!(
                "bytes={} parts={} seconds={secs:.3} mib_per_s={:.1}",
                data.len(),
                etags.len(),
                len / secs / 1048576.0
            );
        }
        Some("get-large") => {
            let (endpoint, bucket, key, access, secret) = (&args[2], &args[3], &args[4], &args[5], &args[6]);
            let started = Instant::now();
            let resp = http.get(url(endpoint, "GET", bucket, key, access, secret)).send().await.unwrap();
            assert!(resp.status().is_success(), "GET failed: {}", resp.status());
            let mut stream = resp.bytes_stream();
            let mut n = 0u64;
            while let Some(chunk) = stream.next().await {
                n += chunk.unwrap().len() as u64;
            }
            let secs = started.elapsed().as_secs_f64();
            println!("bytes={n} seconds={secs:.3} mib_per_s={:.1}", n as f64 / secs / 1048576.0);
        }
        Some("small") => {
            let endpoint = args[2].clone();
            let bucket = args[3].clone();
            let count: usize = args[4].parse().unwrap();
            let size: usize = args[5].parse().unwrap();
            let concurrency: usize = args[6].parse().unwrap();
            let (access, secret) = (args[7].clone(), args[8].clone());
            let body = bytes::Bytes::from(vec![b'x'; size]);
            for method in ["PUT", "GET"] {
                let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let started = Instant::now();
                let mut tasks = Vec::new();
                for _ in 0..concurrency {
                    let (http, next, endpoint, bucket, access, secret, body) = (
                        http.clone(),
                        next.clone(),
                        endpoint.clone(),
                        bucket.clone(),
                        access.clone(),
                        secret.clone(),
                        body.clone(),
                    );
                    tasks.push(tokio::spawn(async move {
                        let mut latencies = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= count {
                                break;
                            }
                            let key = format!("small/{i:06}");
                            let t = Instant::now();
                            let u = url(&endpoint, method, &bucket, &key, &access, &secret);
                            let resp = if method == "PUT" {
                                http.put(u).body(body.clone()).send().await.unwrap()
                            } else {
                                http.get(u).send().await.unwrap()
                            };
                            assert!(resp.status().is_success(), "{method} {key}: {}", resp.status());
                            let got = resp.bytes().await.unwrap();
                            if method == "GET" {
                                assert_eq!(got.len(), size);
                            }
                            latencies.push(t.elapsed());
                        }
                        latencies
                    }));
                }
                let mut all = Vec::new();
                for t in tasks {
                    all.extend(t.await.unwrap());
                }
                let secs = started.elapsed().as_secs_f64();
                all.sort();
                println!(
                    "{} ops={} seconds={secs:.3} ops_per_s={:.0} p50_ms={:.2} p99_ms={:.2}",
                    method.to_lowercase(),
                    all.len(),
                    all.len() as f64 / secs,
                    percentile(&all, 0.50),
                    percentile(&all, 0.99)
                );
            }
        }
        _ => {
            eprintln!("usage: see the top of crates/roost-s3/examples/s3bench.rs");
            std::process::exit(2);
        }
    }
}
