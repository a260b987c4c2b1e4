//! Sensitivity measurements kept on disk, so a second run on the same model
//! and calibration images skips the slowest stage of a target size or a
//! sparsity placement.
//!
//! An entry is a JSON file named by the SHA-256 of everything the
//! measurement depends on: the model (graph, preprocessing, every layer's
//! name, shape, weights and biases), the preprocessed calibration batch
//! (so the images' contents, their choice and their preprocessing), the
//! ladder and trial settings, and [`CACHE_VERSION`] with the package
//! version. The entry repeats its key and is checked against the model and
//! the ladder before use; an unreadable, corrupt or mismatching entry is
//! ignored with a note and measured again, never trusted. Entries are
//! written to a temporary file and renamed into place, so a reader never
//! sees half of one; a cache that cannot be written only costs a note.

use std::path::{Path, PathBuf};

use formats::Model;
use sha2::{Digest, Sha256};

use super::error::PipelineError;
use super::sensitivity::{measure_sensitivity, Sensitivity, SensitivityOptions};
use super::workload::sensitivity_cpu_seconds;
use super::{Calibration, Progress};
use crate::engine::Tensor;

/// Changes whenever the code measures sensitivity differently, so entries
/// of older code are never read as current.
const CACHE_VERSION: &str = "sensitivity-2";

/// How a plan measures sensitivity.
#[derive(Debug, Clone)]
pub struct SensitivityRun {
    /// Calibration images the damage is measured on (an evenly spaced
    /// subset of the calibration images): every trial runs the network on
    /// all of them.
    pub images: usize,
    /// Folder of the cache; `None` always measures and stores nothing.
    pub cache: Option<PathBuf>,
}

impl SensitivityRun {
    /// Load this run's share of `calibration`'s images and measure (or
    /// reuse) the sensitivity of `model` on them with `options`.
    pub fn measure(
        &self,
        model: &Model,
        calibration: &Calibration,
        options: &SensitivityOptions,
        progress: &mut dyn Progress,
    ) -> Result<Sensitivity, PipelineError> {
        let sample = calibration.images.load(model, self.images)?;
        measure_or_reuse(model, &sample, options, self.cache.as_deref(), progress)
    }
}

/// One cache entry as stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    /// The key the entry was written under.
    key: String,
    sensitivity: Sensitivity,
}

/// Measure the sensitivity of `model` on `calib` with `options`, or reuse
/// the entry of `cache_dir` made from the same inputs; a new measurement is
/// stored there. `None` neither reads nor writes a cache.
pub fn measure_or_reuse(
    model: &Model,
    calib: &Tensor,
    options: &SensitivityOptions,
    cache_dir: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<Sensitivity, PipelineError> {
    let Some(dir) = cache_dir else {
        return measure(model, calib, options, progress);
    };
    let key = cache_key(model, calib, options);
    let path = dir.join(format!("sensitivity-{key}.json"));
    if path.exists() {
        match read_entry(&path, &key, model, calib, options) {
            Ok(sensitivity) => {
                progress.note(&format!(
                    "sensitivity reused from {} (--no-cache measures it again)",
                    path.display()
                ));
                return Ok(sensitivity);
            }
            Err(why) => progress.note(&format!(
                "ignoring the cached sensitivity {}: {why}; measuring again",
                path.display()
            )),
        }
    }
    let sensitivity = measure(model, calib, options, progress)?;
    if let Err(e) = write_entry(dir, &path, &key, &sensitivity) {
        progress.note(&format!(
            "cannot cache the sensitivity in {}: {e}",
            dir.display()
        ));
    }
    Ok(sensitivity)
}

/// Measure with a progress bar over the layers, announcing first how long
/// it may take.
fn measure(
    model: &Model,
    calib: &Tensor,
    options: &SensitivityOptions,
    progress: &mut dyn Progress,
) -> Result<Sensitivity, PipelineError> {
    let cpu = sensitivity_cpu_seconds(model, calib.batch(), options)?;
    let threads = rayon::current_num_threads().max(1);
    let ladder = &options.ladder;
    progress.note(&format!(
        "sensitivity analysis: {} layers x {} levels on {} images, about {} of CPU by an estimate from the shapes ({} on {threads} idle cores)",
        model.layers.len(),
        ladder.sparsities.len() + ladder.bits.len(),
        calib.batch(),
        duration(cpu),
        duration(cpu / threads as f64),
    ));
    progress.phase("sensitivity", model.layers.len(), "layers");
    measure_sensitivity(model, calib, options, &mut |name| progress.layer(name))
}

/// `seconds` rounded for a person: `40 s`, `12 min`, `2 h 5 min`.
fn duration(seconds: f64) -> String {
    let minutes = (seconds / 60.0).round() as u64;
    match minutes {
        0 => format!("{} s", seconds.round().max(1.0)),
        1..=119 => format!("{minutes} min"),
        _ => format!("{} h {} min", minutes / 60, minutes % 60),
    }
}

/// The hex SHA-256 of everything a measurement depends on.
fn cache_key(model: &Model, calib: &Tensor, options: &SensitivityOptions) -> String {
    let mut hash = Sha256::new();
    let mut text = |label: &str, value: &str| {
        hash.update((label.len() as u64).to_le_bytes());
        hash.update(label.as_bytes());
        hash.update((value.len() as u64).to_le_bytes());
        hash.update(value.as_bytes());
    };
    text("version", CACHE_VERSION);
    text("package", env!("CARGO_PKG_VERSION"));
    text("graph", &format!("{:?}", model.graph));
    text("preprocess", &format!("{:?}", model.preprocess));
    text("options", &format!("{options:?}"));
    let mut floats = |values: &[f32]| {
        hash.update((values.len() as u64).to_le_bytes());
        for v in values {
            hash.update(v.to_le_bytes());
        }
    };
    for layer in &model.layers {
        floats(&layer.weights);
        floats(&layer.bias);
    }
    floats(&calib.data);
    // Names and shapes of the layers and the batch, after the numbers.
    let shapes: Vec<(&str, [usize; 4])> = model
        .layers
        .iter()
        .map(|l| (l.name.as_str(), l.shape))
        .collect();
    hash.update(format!("{shapes:?} {:?}", calib.shape).as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The entry at `path`, if it is one for `key` that fits the model, batch
/// and ladder; otherwise why not.
fn read_entry(
    path: &Path,
    key: &str,
    model: &Model,
    calib: &Tensor,
    options: &SensitivityOptions,
) -> Result<Sensitivity, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let entry: Entry =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a cache entry ({e})"))?;
    if entry.key != key {
        return Err("it was written for other inputs".into());
    }
    let s = entry.sensitivity;
    let ladder = &options.ladder;
    let fits = s.ladder == *ladder
        && s.images == calib.batch()
        && s.layers.len() == model.layers.len()
        && s.layers.iter().zip(&model.layers).all(|(m, l)| {
            m.name == l.name
                && m.weights == l.weight_count()
                && m.prune.len() == ladder.sparsities.len()
                && m.quantize.len() == ladder.bits.len()
                && m.prune
                    .iter()
                    .chain(&m.quantize)
                    .all(|d| d.kl.is_finite() && d.kl >= 0.0 && (0.0..=1.0).contains(&d.agreement))
        });
    match fits {
        true => Ok(s),
        false => Err("its measurements do not fit this model and ladder".into()),
    }
}

/// Store `sensitivity` at `path` atomically.
fn write_entry(
    dir: &Path,
    path: &Path,
    key: &str,
    sensitivity: &Sensitivity,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let entry = Entry {
        key: key.to_string(),
        sensitivity: sensitivity.clone(),
    };
    let json = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
    let temporary = temporary_path(path);
    let written = std::fs::write(&temporary, json).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// A file name beside `path` that no other process writes.
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::sensitivity::{Damage, Ladder, LayerSensitivity};
    use formats::{Graph, Layer, Preprocess};

    fn model(weight: f32) -> Model {
        Model {
            graph: Graph {
                nodes: Vec::new(),
                input: "data".into(),
                output: "data".into(),
            },
            layers: vec![Layer {
                name: "a".into(),
                shape: [1, 1, 1, 2],
                weights: vec![weight, -0.5],
                bias: vec![0.0],
            }],
            preprocess: Preprocess::torchvision(),
        }
    }

    fn options() -> SensitivityOptions {
        SensitivityOptions::new(Ladder::default(), Default::default())
    }

    fn batch(value: f32) -> Tensor {
        Tensor {
            shape: [1, 1, 1, 1],
            data: vec![value],
        }
    }

    #[test]
    fn the_key_changes_with_every_input() {
        let base = cache_key(&model(0.5), &batch(1.0), &options());
        assert_eq!(base, cache_key(&model(0.5), &batch(1.0), &options()));
        assert_eq!(base.len(), 64);
        assert_ne!(base, cache_key(&model(0.25), &batch(1.0), &options()));
        assert_ne!(base, cache_key(&model(0.5), &batch(2.0), &options()));
        let half = SensitivityOptions {
            half: true,
            ..options()
        };
        assert_ne!(base, cache_key(&model(0.5), &batch(1.0), &half));
    }

    /// Whether calibration matches the original network's output does not
    /// change what a trial measures, so it does not change the key.
    #[test]
    fn the_key_ignores_matching_the_original_output() {
        use crate::pipeline::calibration::CalibrationOptions;
        let fit = |match_original| {
            let calibration = CalibrationOptions {
                match_original,
                ..CalibrationOptions::default()
            };
            let options = SensitivityOptions::new(Ladder::default(), calibration);
            cache_key(&model(0.5), &batch(1.0), &options)
        };
        assert_eq!(fit(true), fit(false));
    }

    #[test]
    fn entries_round_trip_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = options();
        let damage = Damage {
            kl: 0.25,
            agreement: 0.5,
        };
        let sensitivity = Sensitivity {
            ladder: options.ladder.clone(),
            images: 1,
            layers: vec![LayerSensitivity {
                name: "a".into(),
                weights: 2,
                prune: vec![damage; options.ladder.sparsities.len()],
                quantize: vec![damage; options.ladder.bits.len()],
            }],
        };
        let (m, b) = (model(0.5), batch(1.0));
        let key = cache_key(&m, &b, &options);
        let path = dir.path().join("entry.json");
        write_entry(dir.path(), &path, &key, &sensitivity).unwrap();
        assert_eq!(
            read_entry(&path, &key, &m, &b, &options).unwrap(),
            sensitivity
        );
        // Written for other inputs.
        assert!(read_entry(&path, "other", &m, &b, &options).is_err());
        // Another ladder.
        let other = SensitivityOptions {
            ladder: Ladder::pruning(options.ladder.sparsities.clone()).unwrap(),
            ..options.clone()
        };
        assert!(read_entry(&path, &key, &m, &b, &other).is_err());
        // Corrupt: truncated, and a damage out of range.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(read_entry(&path, &key, &m, &b, &options).is_err());
        let mut bad = sensitivity.clone();
        bad.layers[0].prune[0].agreement = 2.0;
        write_entry(dir.path(), &path, &key, &bad).unwrap();
        assert!(read_entry(&path, &key, &m, &b, &options).is_err());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
