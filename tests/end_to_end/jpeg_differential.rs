//! Differential test of sqz's JPEG path against an independent decoder:
//! every image of `$SQZ_SHARED/data/imagenet-sample` and every seed of the
//! `jpeg_decoder` fuzz target is decoded by `sqz::imaging::decode_rgb` (the
//! own libjpeg-turbo-compatible decoder, `image` crate as fallback) and by
//! the `image` crate's JPEG decoder (zune-jpeg). Both must reject it, or
//! both decode it to the same size with every RGB sample within
//! [`TOLERANCE`] levels and the mean difference within [`MEAN_TOLERANCE`].
//!
//! The two are not expected to agree exactly: the own decoder reproduces
//! libjpeg-turbo (the reference PIL uses) bit for bit, while zune-jpeg has
//! another integer IDCT, another colour-conversion rounding and another
//! chroma upsampling. The test also checks which images the own decoder
//! handles itself, so that the comparison is not of the fallback with
//! itself.

use std::path::{Path, PathBuf};

use image::{ImageFormat, RgbImage};
use rayon::prelude::*;

/// Largest accepted difference of one RGB sample, in 8-bit levels.
/// Measured: 9 on the 717 sample images (mean 0.048 over all their
/// samples), 7 on the seeds (mean 0.18). The two decoders round the IDCT,
/// the chroma upsampling and the colour conversion differently, and at
/// sharp edges such differences add up over a few levels; a real decoding
/// error (a wrong block, table or channel) is off by tens of levels.
const TOLERANCE: u8 = 10;

/// Largest accepted mean absolute difference over all samples of one
/// image. Measured: 0.37 at most for one image; a systematic error (such as
/// an off-by-one colour rounding everywhere) would be near 1 or above.
const MEAN_TOLERANCE: f64 = 0.5;

/// Seeds in layouts the own decoder leaves to the `image` crate (see
/// `src/imaging/jpeg/mod.rs`); every other seed and every sample image is a
/// baseline YCbCr or greyscale JPEG it must decode itself.
const FALLBACK_SEEDS: [&str; 3] = ["progressive", "cmyk_adobe", "rgb_adobe"];

/// How one file compared.
#[derive(Debug)]
enum Outcome {
    /// Both decoders refused the file.
    BothRejected,
    /// Both decoded it to the same size.
    Decoded {
        /// Whether the own decoder produced the pixels (not the fallback).
        own_decoder: bool,
        /// Largest and summed absolute sample differences, sample count.
        max: u8,
        sum: u64,
        samples: u64,
    },
}

/// Decodes `bytes` both ways; panics with `name` when exactly one decoder
/// refuses the file or the sizes differ.
fn compare(name: &str, bytes: &[u8]) -> Outcome {
    let ours = sqz::imaging::decode_rgb(bytes, Path::new(name));
    let theirs = image::load_from_memory_with_format(bytes, ImageFormat::Jpeg);
    match (ours, theirs) {
        (Err(_), Err(_)) => Outcome::BothRejected,
        (Ok(ours), Ok(theirs)) => {
            let theirs = theirs.into_rgb8();
            assert_eq!(ours.dimensions(), theirs.dimensions(), "{name}: sizes");
            let (max, sum) = differences(&ours, &theirs);
            Outcome::Decoded {
                own_decoder: sqz::imaging::jpeg::decode(bytes).is_some(),
                max,
                sum,
                samples: ours.as_raw().len() as u64,
            }
        }
        (Ok(_), Err(e)) => panic!("{name}: sqz decodes it, the image crate refuses it: {e}"),
        (Err(e), Ok(_)) => panic!("{name}: the image crate decodes it, sqz refuses it: {e}"),
    }
}

/// Largest and summed absolute difference over all samples.
fn differences(a: &RgbImage, b: &RgbImage) -> (u8, u64) {
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .fold((0, 0), |(max, sum), d| (max.max(d), sum + u64::from(d)))
}

/// The files of `dir` whose names end with `extension` (all files if empty),
/// sorted.
fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable folder").path())
        .filter(|path| path.to_string_lossy().ends_with(extension))
        .collect();
    files.sort();
    files
}

/// Compares every file in `paths` and checks the tolerances; returns the
/// outcomes by file name.
fn compare_all(paths: &[PathBuf]) -> Vec<(String, Outcome)> {
    let outcomes: Vec<(String, Outcome)> = paths
        .par_iter()
        .map(|path| {
            let name = path.file_name().expect("file name").to_string_lossy();
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (name.to_string(), compare(&name, &bytes))
        })
        .collect();
    let (mut max, mut sum, mut samples, mut worst_mean) = (0, 0, 0, 0.0f64);
    for (name, outcome) in &outcomes {
        if let Outcome::Decoded {
            max: m,
            sum: s,
            samples: n,
            ..
        } = outcome
        {
            let mean = *s as f64 / *n as f64;
            assert!(*m <= TOLERANCE, "{name}: a sample differs by {m} levels");
            assert!(mean <= MEAN_TOLERANCE, "{name}: mean difference {mean}");
            (max, sum, samples) = (max.max(*m), sum + s, samples + n);
            worst_mean = worst_mean.max(mean);
        }
    }
    println!(
        "{} files: largest difference {max} levels, mean {:.4} over {samples} samples, \
         largest mean of one file {worst_mean:.4}",
        outcomes.len(),
        sum as f64 / samples.max(1) as f64
    );
    outcomes
}

#[test]
fn sample_images_decode_like_the_image_crate() {
    let outcomes = compare_all(&files(&crate::common::images(), ".JPEG"));
    assert_eq!(outcomes.len(), 717, "the shared sample has 717 JPEGs");
    for (name, outcome) in &outcomes {
        assert!(
            matches!(
                outcome,
                Outcome::Decoded {
                    own_decoder: true,
                    ..
                }
            ),
            "{name}: {outcome:?} (every sample image is a baseline JPEG the own decoder handles)"
        );
    }
}

#[test]
fn fuzz_seeds_decode_like_the_image_crate() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/jpeg_decoder");
    let outcomes = compare_all(&files(&seeds, ""));
    assert!(outcomes.len() >= 9, "{outcomes:?}");
    for (name, outcome) in &outcomes {
        let Outcome::Decoded { own_decoder, .. } = outcome else {
            panic!("{name}: every seed is a valid JPEG, both decoders must read it");
        };
        assert_eq!(
            *own_decoder,
            !FALLBACK_SEEDS.contains(&name.as_str()),
            "{name}: decoded by the own decoder"
        );
    }
}
