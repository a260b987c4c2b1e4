//! End-to-end test of `report`: build a 4-bit quantized model of Han's
//! SqueezeNet with the CLI, write the report for 16 images, check the page's
//! numbers against the data's documentation and `eval`, and render it in
//! headless Chromium to check that every chart loaded. Needs the shared
//! data and a `chromium` binary (install it with `.ci/install-chromium`);
//! without them the test fails, it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{han_net, images, run, run_env, run_ok};

/// Convolution layers of Han's SqueezeNet v1.0 (shared README).
const HAN_LAYERS: usize = 26;
/// Its parameters, weights and biases (shared README).
const HAN_PARAMETERS: usize = 1_248_424;

/// The `chromium` binary on PATH, or a test failure saying how to get one.
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("chromium is not installed; run .ci/install-chromium (tests/report.rs renders the HTML report with it)"))
}

/// Run headless Chromium on `page` with `extra` arguments and return stdout.
fn headless(page: &Path, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("temp profile dir");
    let url = format!(
        "file://{}",
        page.canonicalize().expect("page exists").display()
    );
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
        ])
        .args([
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("cannot start chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The bytes of a row of the stage table: `<tr class="stage"><td>NAME</td><td>BYTES</td>`.
fn stage_bytes(html: &str, name: &str) -> usize {
    let start = format!("<tr class=\"stage\"><td>{name}</td><td>");
    let rest = &html[html.find(&start).unwrap_or_else(|| panic!("no {name} row")) + start.len()..];
    rest[..rest.find('<').expect("cell end")]
        .parse()
        .expect("byte count")
}

#[test]
fn report_of_a_quantized_han_model_renders_every_chart() {
    chromium(); // fail early, before the slower steps, when it is missing
    let tmp = tempfile::tempdir().expect("temp dir");
    let sqz = tmp.path().join("q4.sqz");
    run_ok(args!["quantize", han_net(), "--bits", "4", "-o", sqz]);
    let dir = tmp.path().join("report");
    let (han, sample) = (han_net(), images());
    let report_args = args!["report", han, sqz, "--images", sample, "--limit", "16", "-o", dir];
    let stdout = run_ok(report_args);
    assert!(stdout.contains("index.html"), "{stdout}");

    // Only the report directory, holding only the page, is left behind.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "q4.sqz and report only: {names:?}");
    let files: Vec<_> = std::fs::read_dir(&dir).expect("list report").collect();
    assert_eq!(files.len(), 1);
    let page = dir.join("index.html");
    let html = std::fs::read_to_string(&page).expect("index.html");

    // Sizes: dense float32 of every parameter, and the real file at the end.
    assert_eq!(stage_bytes(&html, "original"), 4 * HAN_PARAMETERS);
    let file_len = std::fs::metadata(&sqz).expect("sqz").len() as usize;
    assert_eq!(stage_bytes(&html, "Huffman (.sqz file)"), file_len);
    let (pruned, quantized) = (
        stage_bytes(&html, "pruned"),
        stage_bytes(&html, "quantized"),
    );
    assert!(
        4 * HAN_PARAMETERS > pruned && pruned > quantized,
        "{pruned} {quantized}"
    );

    // Accuracy: the same numbers `eval --reference` prints.
    let eval = run_ok(args![
        "eval",
        sqz,
        "--reference",
        han_net(),
        "--images",
        images(),
        "--limit",
        "16",
        "--json"
    ]);
    let eval: serde_json::Value = serde_json::from_str(&eval).expect("eval JSON");
    let pct = |key: &str| format!("{:.2} %", 100.0 * eval[key].as_f64().expect(key));
    let top1 = format!(
        "<td>top-1</td><td>{}</td><td>{}</td>",
        pct("reference_top1"),
        pct("top1")
    );
    let top5 = format!(
        "<td>top-5</td><td>{}</td><td>{}</td>",
        pct("reference_top5"),
        pct("top5")
    );
    let agreement = format!(
        "<td>top-1 agreement</td><td></td><td>{}</td>",
        pct("agreement")
    );
    for row in [top1, top5, agreement] {
        assert!(html.contains(&row), "missing {row}");
    }

    // Rewriting the report over the old one, on one thread, gives the same bytes.
    let again = run_env(report_args, &[("RAYON_NUM_THREADS", "1")]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&page).expect("index.html"),
        html,
        "report differs on 1 thread"
    );

    // Four summary charts and one histogram per layer, all rendered.
    let charts = 4 + HAN_LAYERS;
    assert_eq!(html.matches("<figure class=\"chart\"><svg").count(), charts);
    let dom = headless(&page, &["--virtual-time-budget=5000", "--dump-dom"]);
    assert!(
        dom.contains(&format!("data-charts-loaded=\"{charts}\"")),
        "charts did not all render: {}",
        dom.lines()
            .find(|l| l.contains("<body"))
            .unwrap_or("no <body> in the DOM")
    );
    let shot = tmp.path().join("page.png");
    headless(
        &page,
        &[
            "--window-size=1100,2400",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes of screenshot",
        png.len()
    );
}

#[test]
fn failed_report_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("report");
    let out = run(args![
        "report",
        han_net(),
        tmp.path().join("missing.sqz"),
        "--images",
        images(),
        "-o",
        dir
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("missing.sqz"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).expect("list").count(),
        0,
        "nothing written"
    );

    // Models with different layers are refused before evaluation.
    let sqz = tmp.path().join("han.sqz");
    run_ok(args!["quantize", han_net(), "--bits", "4", "-o", sqz]);
    let out = run(args![
        "report",
        crate::common::v11_param(),
        sqz,
        "--images",
        images(),
        "-o",
        dir
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not in the original model"), "{stderr}");
    std::fs::remove_file(&sqz).expect("remove han.sqz");
    assert_eq!(
        std::fs::read_dir(tmp.path()).expect("list").count(),
        0,
        "nothing written"
    );

    // A compressed model that is not a .sqz is refused with one line.
    let out = run(args![
        "report",
        han_net(),
        han_net(),
        "--images",
        images(),
        "-o",
        dir
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(".sqz"));
    assert_eq!(
        std::fs::read_dir(tmp.path()).expect("list").count(),
        0,
        "nothing written"
    );
}
