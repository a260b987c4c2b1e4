//! Hostile and broken inputs through the real `sqz-compress` binary: every
//! one must be refused with exit code 1 and a one-line `error: ...` (never
//! accepted, never a panic, which exits 2), quickly, without writing an
//! output file. Also replays the fuzz seeds and regression inputs of
//! `fuzz/` through the same code the fuzz targets run.

// The fuzz targets load the CRC-32 module of `common` by path too.
#[allow(clippy::duplicate_mod)]
#[path = "../../fuzz/targets.rs"]
mod fuzz_targets;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::{han_net, images, png_header, run, v11_param};

/// The tiny hand-made ncnn model of the fuzz seeds: 4 output classes.
fn tiny_param() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/models/tiny.ncnn.param")
}

/// Asserts that `out` is a user error (exit 1) with a one-line message
/// starting `error: `, and returns that line.
fn user_error(out: &Output, case: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{case}: expected exit 1, stderr: {stderr}"
    );
    let line = stderr.trim_end();
    assert!(
        !line.contains('\n'),
        "{case}: one-line error expected, got {stderr}"
    );
    assert!(line.starts_with("error: "), "{case}: {stderr}");
    line.to_owned()
}

/// Writes `bytes` to `name` in `dir` and returns the path.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// A small real `.sqz`: SqueezeNet v1.1 quantized to 2-bit codebooks.
fn small_sqz(dir: &Path) -> Vec<u8> {
    let path = dir.join("q2.sqz");
    crate::common::run_ok(args!["quantize", v11_param(), "--bits", "2", "-o", path]);
    std::fs::read(&path).expect("the quantized model was written")
}

/// Runs `inspect` on `bytes` saved as a `.sqz` and expects a user error.
fn inspect_rejects(dir: &Path, bytes: &[u8], case: &str) -> String {
    let path = write(dir, "case.sqz", bytes);
    user_error(&run(args!["inspect", path]), case)
}

#[test]
fn fuzz_seeds_and_regressions_replay_without_panics() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for target in fuzz_targets::TARGETS {
        let mut replayed = 0;
        for folder in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("readable fuzz folder").path();
                let data =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(fuzz_targets::run(target, &data));
                replayed += 1;
            }
        }
        assert!(
            replayed > 0,
            "no seeds for fuzz target {target} under {}",
            fuzz.display()
        );
    }
}

#[test]
fn fuzz_checksum_fixing_keeps_valid_files_and_repairs_flipped_ones() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/sqz_reader");
    let entries = std::fs::read_dir(&seeds).unwrap_or_else(|e| panic!("{}: {e}", seeds.display()));
    for entry in entries {
        let path = entry.expect("readable seed folder").path();
        let bytes = std::fs::read(&path).expect("readable seed");
        assert_eq!(
            fuzz_targets::with_valid_checksums(&bytes),
            bytes,
            "{}",
            path.display()
        );
        // The last byte (in the last layer section) flipped: the checksum
        // catches it, and once repaired no checksum error remains.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        let repaired = fuzz_targets::with_valid_checksums(&flipped);
        let err = formats::sqz::read_sqz(&flipped).expect_err("flip detected");
        assert!(err.to_string().contains("checksum"), "{err}");
        if let Err(e) = formats::sqz::read_sqz(&repaired) {
            assert!(
                !e.to_string().contains("checksum"),
                "{}: {e}",
                path.display()
            );
        }
    }
}

#[test]
fn sqz_bit_flips_are_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = small_sqz(dir.path());
    // Every byte of the header and start of the directory, then bytes spread
    // over the whole file; the flipped bit varies with the position.
    let spread = (0..64).map(|i| 64 + i * (bytes.len() - 65) / 63);
    for position in (0..64).chain(spread) {
        let mut flipped = bytes.clone();
        flipped[position] ^= 1 << (position % 8);
        inspect_rejects(
            dir.path(),
            &flipped,
            &format!("bit {} of byte {position} flipped", position % 8),
        );
    }
    // A failing command writes nothing.
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 3] ^= 0x40;
    let input = write(dir.path(), "flipped.sqz", &flipped);
    let out = dir.path().join("decoded.sqz");
    user_error(
        &run(args!["decode", input, "-o", out]),
        "decode of a flipped file",
    );
    assert!(!out.exists(), "a failed decode left {}", out.display());
}

#[test]
fn sqz_truncations_are_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = small_sqz(dir.path());
    let spread = (0..48).map(|i| 48 + i * (bytes.len() - 49) / 47);
    for len in (0..48).chain(spread).chain([bytes.len() - 1]) {
        inspect_rejects(
            dir.path(),
            &bytes[..len],
            &format!("truncated to {len} of {} bytes", bytes.len()),
        );
    }
    let mut extended = bytes.clone();
    extended.push(0);
    inspect_rejects(dir.path(), &extended, "one trailing byte");
}

#[test]
fn sqz_claiming_huge_shapes_is_rejected_quickly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.sqz");
    crate::common::run_ok(args!["quantize", han_net(), "--bits", "2", "-o", good]);
    let file = formats::sqz::read_sqz(&std::fs::read(&good).expect("written")).expect("valid .sqz");
    // 2^40 weights as 2^20 x 2^20, as one 2^40 dimension, and 2^112 as
    // four dimensions of 2^28 (each allowed alone).
    for shape in [[1 << 20, 1 << 20, 1, 1], [1 << 40, 1, 1, 1], [1 << 28; 4]] {
        for layer in [0, file.layers.len() - 1] {
            let mut lying = file.clone();
            lying.layers[layer].shape = shape;
            let bytes = formats::sqz::write_sqz(&lying);
            let input = write(dir.path(), "lying.sqz", &bytes);
            let out = dir.path().join("decoded.sqz");
            let start = Instant::now();
            let result = run(args!["decode", input, "-o", out]);
            // A reader that believed the header would allocate terabytes or
            // loop for minutes; checking a few hundred KB takes milliseconds.
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "shape {shape:?} took {:?}",
                start.elapsed()
            );
            user_error(&result, &format!("layer {layer} claiming shape {shape:?}"));
            assert!(!out.exists());
        }
    }
}

/// A baseline JPEG up to its frame header, announcing `width x height`
/// 3-component 8-bit pixels, then end of image.
fn jpeg_header(width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8];
    jpeg.extend_from_slice(&height.to_be_bytes());
    jpeg.extend_from_slice(&width.to_be_bytes());
    jpeg.push(3);
    for id in 1..=3 {
        jpeg.extend_from_slice(&[id, 0x11, 0]);
    }
    jpeg.extend_from_slice(&[0xFF, 0xD9]);
    jpeg
}

/// The first image of the shared sample, as a real JPEG to damage.
fn real_jpeg() -> Vec<u8> {
    let path = images().join("n01484850_great_white_shark.JPEG");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A tiny baseline JPEG seed of the fuzz target (710 bytes) whose header
/// claims 12000x12000 pixels: allowed sides, but far more pixels than the
/// bytes can describe. Decoded regardless, it took 760 MB and 3.3 s.
fn lying_jpeg() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/jpeg_decoder/baseline_420");
    let mut jpeg = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline frame header");
    let side = 12_000u16.to_be_bytes();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[side, side].concat());
    jpeg
}

/// The broken images: file name and bytes.
fn broken_images() -> Vec<(&'static str, Vec<u8>)> {
    let jpeg = real_jpeg();
    let mut garbled = jpeg.clone();
    garbled[2..400].fill(0xFF); // markers and tables overwritten
    vec![
        // Cut inside the tables before the scan. (A cut inside the scan data
        // is decoded with the missing blocks filled in, as libjpeg does.)
        ("truncated.jpg", jpeg[..2000].to_vec()),
        ("garbled.jpg", garbled),
        ("empty.jpg", Vec::new()),
        ("zero.png", png_header(0, 0)),
        ("huge.png", png_header(100_000, 100_000)),
        // 16-bit size fields: 65535 is the largest side a JPEG can claim.
        ("huge.jpg", jpeg_header(65_535, 65_535)),
        ("lying.jpg", lying_jpeg()),
    ]
}

#[test]
fn broken_images_are_rejected_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, bytes) in broken_images() {
        let path = write(dir.path(), name, &bytes);
        let start = Instant::now();
        let line = user_error(&run(args!["classify", tiny_param(), path]), name);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{name} took {:?}",
            start.elapsed()
        );
        assert!(
            line.contains(name),
            "{name}: the error must name the file: {line}"
        );
    }
}

/// Writes a `labels.tsv` with a header and `rows` into `dir`.
fn write_labels(dir: &Path, rows: &[String]) -> PathBuf {
    let text = format!("file\tclass_index\twnid\tname\n{}\n", rows.join("\n"));
    write(dir, "labels.tsv", text.as_bytes())
}

/// A `labels.tsv` row for `file` with class `class`.
fn row(file: &str, class: usize) -> String {
    format!("{file}\t{class}\tn00000000\tsomething")
}

#[test]
fn label_problems_are_rejected_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "a.jpg", &real_jpeg());
    let eval = |case: &str| {
        user_error(
            &run(args!["eval", tiny_param(), "--images", dir.path()]),
            case,
        )
    };

    let line = eval("missing labels.tsv");
    assert!(line.contains("labels.tsv"), "{line}");

    let malformed: [(&str, &str); 4] = [
        ("wrong header", "name\tfile\nx\ty\n"),
        (
            "missing column",
            "file\tclass_index\twnid\tname\na.jpg\t3\n",
        ),
        (
            "class not a number",
            "file\tclass_index\twnid\tname\na.jpg\tthree\tn0\tx\n",
        ),
        ("empty file", ""),
    ];
    for (case, text) in malformed {
        write(dir.path(), "labels.tsv", text.as_bytes());
        let line = eval(case);
        assert!(line.contains("labels.tsv"), "{case}: {line}");
    }

    // Beyond ImageNet's 1000 classes: refused by the label reader.
    write_labels(dir.path(), &[row("a.jpg", 1000)]);
    let line = eval("class 1000");
    assert!(line.contains("labels.tsv:2"), "{line}");
    // A valid ImageNet class that the 4-class tiny model cannot predict:
    // refused before any image is decoded, naming the image.
    write_labels(dir.path(), &[row("a.jpg", 4)]);
    let line = eval("class 4 of a 4-class model");
    assert!(line.contains("a.jpg") && line.contains('4'), "{line}");
    // A listed image that does not exist.
    write_labels(dir.path(), &[row("a.jpg", 0), row("nope.jpg", 1)]);
    let line = eval("missing image");
    assert!(line.contains("nope.jpg"), "{line}");
}

#[test]
fn eval_skip_bad_skips_and_reports_unreadable_images() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good: Vec<(String, usize)> = std::fs::read_to_string(images().join("labels.tsv"))
        .expect("shared labels.tsv")
        .lines()
        .skip(1)
        .take(3)
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[0].to_owned(), cols[1].parse().expect("class index"))
        })
        .collect();
    for (file, _) in &good {
        std::fs::copy(images().join(file), dir.path().join(file)).expect("copy a sample image");
    }
    let broken = broken_images();
    for (name, bytes) in &broken {
        write(dir.path(), name, bytes);
    }
    // Broken images interleaved with the good ones.
    let mut rows: Vec<String> = good.iter().map(|(f, c)| row(f, *c)).collect();
    for (i, (name, _)) in broken.iter().enumerate() {
        rows.insert((2 * i + 1).min(rows.len()), row(name, 0));
    }
    write_labels(dir.path(), &rows);
    let predictions = dir.path().join("predictions.tsv");

    // Without --skip-bad: the first broken image in list order stops the run.
    let out = run(args![
        "eval",
        v11_param(),
        "--images",
        dir.path(),
        "--json",
        "--predictions",
        predictions
    ]);
    let line = user_error(&out, "eval without --skip-bad");
    assert!(line.contains(broken[0].0), "{line}");
    assert!(
        !predictions.exists(),
        "a failed eval wrote {}",
        predictions.display()
    );

    let out = run(args![
        "eval",
        v11_param(),
        "--images",
        dir.path(),
        "--json",
        "--skip-bad",
        "--batch",
        "2"
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "eval --skip-bad failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        report["skipped"].as_u64(),
        Some(broken.len() as u64),
        "{report}"
    );
    assert_eq!(
        report["images"].as_u64(),
        Some(good.len() as u64),
        "{report}"
    );
    assert_eq!(
        stderr.lines().count(),
        broken.len(),
        "one warning per skipped image: {stderr}"
    );
    for (name, _) in &broken {
        assert!(stderr.contains(name), "{name} not reported: {stderr}");
    }

    // The accuracy is that of the good images alone.
    write_labels(
        dir.path(),
        &good.iter().map(|(f, c)| row(f, *c)).collect::<Vec<_>>(),
    );
    let out = run(args!["eval", v11_param(), "--images", dir.path(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(clean["skipped"].as_u64(), Some(0));
    assert_eq!(
        (&clean["top1"], &clean["top5"]),
        (&report["top1"], &report["top5"])
    );
}

/// A reader that stops early (`sqz-compress inspect MODEL | head -1`) is
/// not a failure: with stdout a pipe whose reader is already gone, help
/// and a table both end with exit 0 and nothing on stderr, not with a
/// panic about printing.
#[test]
fn closed_stdout_ends_quietly() {
    for args in [
        vec![PathBuf::from("--help")],
        vec!["inspect".into(), tiny_param()],
    ] {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let out = crate::common::sqz_command()
            .args(&args)
            .stdout(writer)
            .output()
            .expect("sqz-compress runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{args:?}: exit {:?}, stderr: {stderr}",
            out.status.code()
        );
    }
}
