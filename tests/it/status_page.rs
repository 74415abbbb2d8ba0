//! `GET /`, the status page, in a real headless Chromium (Debian's `chromium`, which
//! `scripts/test` installs): a `serve` process fed a drifting and a stable series, the DOM
//! Chromium built checked for both distributions' plots, the history strip and pagination,
//! every link followed, and a screenshot checked by content (not blank, both windows'
//! colours present). Also: the page is behind the same auth as every route.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use driftgauge::formats::svg::{CURRENT_COLOUR, REFERENCE_COLOUR};

use crate::cli::{http, Process};
use crate::support::{poll, Rng};

const RULES: &str = r#"groups:
  - name: features
    interval: 1s
    rules:
      - name: amount_drift
        detector: ks
        series: 'feature_value{feature="amount"}'
        reference: {first: 300}
        current: {last: 300}
        min_samples: 50
        alpha: 0.01
      - name: wide
        detector: ks
        series: 'wide_value'
        reference: {first: 100}
        current: {last: 100}
      - name: accuracy
        detector: ema
        series: 'model_accuracy'
        smoothing: 0.5
        below: 0.85
        min_samples: 1
"#;

fn push(addr: &str, metric: &str, labels: &str, values: &[f64]) {
    let values: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
    let body = format!(
        "{{\"samples\":[{{\"metric\":\"{metric}\",\"labels\":{labels},\"values\":[{}]}}]}}",
        values.join(",")
    );
    let (status, answer) = http(addr, "POST", "/api/v1/samples", &body);
    assert_eq!(status, 200, "{answer}");
}

/// A served rule set: `m1`'s amount drifts, `m2`..`m7`'s do not; 120 `wide` series.
fn start(dir: &Path, extra: &[&str]) -> Process {
    std::fs::create_dir_all(dir.join("rules")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.join("driftgauge.yml"),
        "rule_files: [\"rules/*.yml\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("rules/r.yml"), RULES).unwrap_or_else(|e| panic!("{e}"));
    let mut args = vec!["--config.file=driftgauge.yml", "--storage.path=data"];
    args.extend(extra);
    Process::start(dir, &args)
}

fn feed(addr: &str) {
    let mut rng = Rng::new(7);
    for m in 1..=7 {
        let labels = format!("{{\"feature\":\"amount\",\"model\":\"m{m}\"}}");
        push(addr, "feature_value", &labels, &rng.normals(300, 0.0, 1.0));
        let shift = if m == 1 { 1.5 } else { 0.0 };
        push(
            addr,
            "feature_value",
            &labels,
            &rng.normals(300, shift, 1.0),
        );
    }
    for i in 0..120 {
        push(addr, "wide_value", &format!("{{\"i\":\"{i:03}\"}}"), &[1.0]);
    }
    push(
        addr,
        "model_accuracy",
        "{\"model\":\"m1\"}",
        &[0.95, 0.9, 0.7, 0.6],
    );
}

/// The `chromium` binary: installed by `scripts/test`; its absence fails the test loudly.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {name}"))
            .output()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    panic!("chromium is not installed: the status page is tested in a real browser (scripts/test installs Debian's chromium with apt)");
}

/// Runs headless Chromium on `url` with `args` (`--dump-dom`, `--screenshot=...`); its stdout.
fn browse(profile: &Path, url: &str, args: &[&str]) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("running chromium: {e}"));
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every `href="..."` of a DOM, unescaped.
fn hrefs(dom: &str) -> Vec<String> {
    dom.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}

/// The `<tr ...>...</tr>` of the series whose labels contain `needle`.
fn row<'a>(dom: &'a str, needle: &str) -> &'a str {
    dom.split("<tr class=\"s-")
        .find(|r| r.contains(needle))
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row with {needle}"))
}

#[test]
fn the_status_page_renders_in_chromium_with_both_distributions_history_and_working_links() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = start(dir.path(), &[]);
    feed(&p.addr);
    // Wait for m1 to drift, and for a few evaluations of history.
    poll(
        "m1 to drift and m2 to be evaluated",
        Duration::from_secs(30),
        || {
            let (_, rules) = p.get("/api/v1/rules");
            let v: serde_json::Value = serde_json::from_str(&rules).unwrap_or_default();
            let series = v["data"]["groups"][0]["rules"][0]["series"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let state = |m: &str| {
                series
                    .iter()
                    .find(|s| s["labels"]["model"] == m)
                    .map(|s| s["state"].as_str().unwrap_or("").to_string())
            };
            (state("m1").as_deref() == Some("drifted") && state("m2").as_deref() == Some("stable"))
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(2500));
    let base = format!("http://{}", p.addr);
    let dom = browse(profile.path(), &format!("{base}/"), &["--dump-dom"]);
    assert!(dom.contains("group features"), "{dom}");
    // m1 is drifted, listed first, with both windows' ECDFs: the current one to the right.
    let m1 = row(&dom, "model=\"m1\"");
    assert!(m1.starts_with("drifted"), "{m1}");
    let path_x = |class: &str| -> f64 {
        let d = m1
            .split(&format!("<path class=\"{class}\" d=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("no {class} path in {m1}"));
        // The x where the step reaches half the height (the median), from "H<x>V<y>" pairs.
        let steps: Vec<(f64, f64)> = d
            .split('H')
            .skip(1)
            .filter_map(|s| {
                let (x, y) = s.split_once('V')?;
                Some((x.parse().ok()?, y.parse().ok()?))
            })
            .collect();
        assert!(steps.len() > 20, "{d}");
        steps
            .iter()
            .find(|(_, y)| *y <= 74.0)
            .map(|s| s.0)
            .unwrap_or(f64::NAN)
    };
    assert!(
        path_x("cur") > path_x("ref") + 20.0,
        "the current median is right of the reference's"
    );
    assert!(m1.contains("<svg class=\"history\""), "{m1}");
    assert!(
        m1.matches("<rect class=\"s-").count() >= 2,
        "history strip: {m1}"
    );
    let m2 = row(&dom, "model=\"m2\"");
    assert!(
        m2.starts_with("stable")
            && m2.contains("<path class=\"ref\"")
            && m2.contains("<path class=\"cur\""),
        "{m2}"
    );
    // The EMA rule shows its value and threshold, without a plot.
    assert!(dom.contains("drifted below 0.85"), "threshold");
    let ema = row(&dom, "{model=\"m1\"}</code>");
    assert!(
        ema.starts_with("drifted") && ema.contains("0.7063"),
        "{ema}"
    );
    // The overview shows 5 series of a rule, and links to the rest.
    assert!(dom.contains("all 7 series of amount_drift"), "preview link");
    assert!(dom.contains("all 120 series of wide"), "preview link");
    assert!(dom.matches("<path class=\"ref\"").count() <= driftgauge::http::status::MAX_PLOTS);
    // Every link answers.
    let links = hrefs(&dom);
    for want in [
        "/metrics",
        "/api/v1/rules",
        "/-/ready",
        "/?group=features&rule=wide",
    ] {
        assert!(links.iter().any(|l| l == want), "{want} not in {links:?}");
    }
    for link in &links {
        let (status, _) = p.get(link);
        assert_eq!(status, 200, "{link}");
    }
    // A rule's page, followed in the browser: 50 series a page, worst first, with next/prev.
    let wide = browse(
        profile.path(),
        &format!("{base}/?group=features&rule=wide"),
        &["--dump-dom"],
    );
    assert_eq!(wide.matches("<tr class=\"s-").count(), 50, "page 1");
    assert!(wide.contains("page 1 of 3"), "pages");
    let next = hrefs(&wide)
        .into_iter()
        .find(|h| h.contains("page=2"))
        .unwrap_or_else(|| panic!("no next link"));
    let page3 = browse(
        profile.path(),
        &format!("{base}{}", next.replace("page=2", "page=3")),
        &["--dump-dom"],
    );
    assert_eq!(page3.matches("<tr class=\"s-").count(), 20, "page 3");
    assert!(
        page3.contains("i=\"119\"") && page3.contains("rel=\"prev\""),
        "last page"
    );
    let amount = browse(
        profile.path(),
        &format!("{base}/?group=features&rule=amount_drift"),
        &["--dump-dom"],
    );
    assert_eq!(amount.matches("<tr class=\"s-").count(), 7);
    // The screenshot: not blank, and both windows' colours are drawn.
    let shot = profile.path().join("shot.png");
    browse(
        profile.path(),
        &format!("{base}/?group=features&rule=amount_drift"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,1600",
        ],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot: {e}"));
    let (w, h, pixels) = decode_png(&png);
    assert!(w >= 1000 && h >= 1000, "{w}x{h}");
    let near = |c: (u8, u8, u8), hex: &str| {
        let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
        let (r, g, b) = ((v >> 16) as i32, ((v >> 8) & 255) as i32, (v & 255) as i32);
        (c.0 as i32 - r).abs() + (c.1 as i32 - g).abs() + (c.2 as i32 - b).abs() < 40
    };
    let count = |hex: &str| pixels.iter().filter(|p| near(**p, hex)).count();
    let white = pixels
        .iter()
        .filter(|p| p.0 > 245 && p.1 > 245 && p.2 > 245)
        .count();
    assert!(white < pixels.len() * 99 / 100, "a blank screenshot");
    assert!(
        count(REFERENCE_COLOUR) > 200,
        "reference colour: {}",
        count(REFERENCE_COLOUR)
    );
    assert!(
        count(CURRENT_COLOUR) > 200,
        "current colour: {}",
        count(CURRENT_COLOUR)
    );
    assert!(count("#c62828") > 20, "the drifted badge");
}

#[test]
fn the_status_page_is_behind_the_same_auth_and_bounded() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hash = bcrypt::hash("secret", 4).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("web.yml"),
        format!("basic_auth_users:\n  alice: {hash}\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = start(dir.path(), &["--web.config.file=web.yml"]);
    let get = |auth: Option<&str>, path: &str| -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&p.addr).unwrap_or_else(|e| panic!("{e}"));
        let header = auth
            .map(|a| format!("Authorization: Basic {a}\r\n"))
            .unwrap_or_default();
        let _ = write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{header}\r\n"
        );
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, out)
    };
    use base64::Engine as _;
    let good = base64::engine::general_purpose::STANDARD.encode("alice:secret");
    let bad = base64::engine::general_purpose::STANDARD.encode("alice:wrong");
    assert_eq!(get(None, "/").0, 401);
    assert_eq!(get(Some(&bad), "/?group=features&rule=wide").0, 401);
    let (status, page) = get(Some(&good), "/");
    assert_eq!(status, 200);
    assert!(
        page.contains("Content-Type: text/html") || page.contains("content-type: text/html"),
        "{page}"
    );
    assert!(page.contains("group features"));
    // Unknown rules fall back to the overview; a huge page number shows the last page.
    let (status, page) = get(
        Some(&good),
        "/?group=features&rule=nope&page=99999999999999999999",
    );
    assert_eq!(status, 200);
    assert!(page.contains("No such group and rule"));
    let (status, page) = get(Some(&good), "/?group=features&rule=wide&page=99999");
    assert_eq!(status, 200);
    assert!(
        page.contains("page 1 of 1"),
        "no series yet: one empty page"
    );
}

/// The pixels of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes), as RGB.
fn decode_png(png: &[u8]) -> (usize, usize, Vec<(u8, u8, u8)>) {
    use std::io::Read;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let (mut w, mut h, mut channels) = (0, 0, 0);
    let mut idat = Vec::new();
    let mut i = 8;
    while i + 12 <= png.len() {
        let len = be(&png[i..]);
        let kind = &png[i + 4..i + 8];
        let data = &png[i + 8..i + 8 + len];
        match kind {
            b"IHDR" => {
                (w, h) = (be(data), be(&data[4..]));
                assert_eq!((data[8], data[12]), (8, 0), "8-bit, not interlaced");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    t => panic!("PNG colour type {t}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        i += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("inflating the PNG: {e}"));
    let stride = w * channels;
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity(w * h);
    for r in 0..h {
        let line = &raw[r * (stride + 1)..(r + 1) * (stride + 1)];
        let mut cur = line[1..].to_vec();
        for x in 0..stride {
            let a = if x >= channels { cur[x - channels] } else { 0 };
            let b = prev[x];
            let c = if x >= channels { prev[x - channels] } else { 0 };
            let add = match line[0] {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("PNG filter {f}"),
            };
            cur[x] = cur[x].wrapping_add(add);
        }
        pixels.extend(cur.chunks_exact(channels).map(|p| (p[0], p[1], p[2])));
        prev = cur;
    }
    (w, h, pixels)
}
