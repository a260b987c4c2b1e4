//! Which calibration images a run uses and loading them: the library side
//! of `--calib DIR --calib-count N`, shared by compression, sensitivity
//! analysis and `eval --exclude-calib`.

use std::path::{Path, PathBuf};

use formats::Model;

use super::error::PipelineError;
use crate::engine::Tensor;
use crate::imaging::load_batch;

/// File extensions read as calibration images.
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// A folder of unlabeled calibration images and how many of them to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalibrationImages {
    /// Folder of JPEG/PNG images (other files are ignored).
    pub dir: PathBuf,
    /// Images used, picked by [`CalibrationImages::files`].
    pub count: usize,
}

impl CalibrationImages {
    /// The `count` calibration images of `dir`: the image files sorted by
    /// name, taken at evenly spaced ranks so that a folder sorted by class
    /// (like ImageNet samples) contributes all across its classes. The same
    /// folder and count always give the same images, which `eval
    /// --exclude-calib` relies on to evaluate on the other ones.
    pub fn files(&self) -> Result<Vec<PathBuf>, PipelineError> {
        if self.count == 0 {
            return Err(PipelineError::NoCalibrationCount);
        }
        Ok(evenly_spaced(&self.all_files()?, self.count))
    }

    /// `count` images of the folder that are not calibration images, at
    /// evenly spaced ranks of the rest (none when every image is used):
    /// fine-tuning watches its progress on them without training on them.
    pub fn held_out(&self, count: usize) -> Result<Vec<PathBuf>, PipelineError> {
        let used = self.files()?;
        let rest: Vec<PathBuf> = self
            .all_files()?
            .into_iter()
            .filter(|f| used.binary_search(f).is_err())
            .collect();
        Ok(evenly_spaced(&rest, count))
    }

    /// Every image file of the folder, sorted by name.
    fn all_files(&self) -> Result<Vec<PathBuf>, PipelineError> {
        let dir = &self.dir;
        let listing_error = |source| PipelineError::CalibrationFolder {
            dir: dir.clone(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(listing_error)? {
            let path = entry.map_err(listing_error)?.path();
            if is_image(&path) && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(PipelineError::NoCalibrationImages(dir.clone()));
        }
        Ok(files)
    }

    /// The first `subset` images (evenly spaced, see [`evenly_spaced`]) of
    /// the calibration images, preprocessed for `model`. Subsets stay
    /// inside the calibration set, so `eval --exclude-calib` still
    /// evaluates on unseen images.
    pub fn load(&self, model: &Model, subset: usize) -> Result<Tensor, PipelineError> {
        let files = evenly_spaced(&self.files()?, subset);
        Ok(load_batch(&files, &model.preprocess)?)
    }
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// `count` items of `items` (all of them when there are fewer) at evenly
/// spaced ranks, in order. Used to pick calibration images across a
/// folder, and a smaller subset of them for sensitivity analysis.
pub fn evenly_spaced<T: Clone>(items: &[T], count: usize) -> Vec<T> {
    let n = items.len();
    let take = count.min(n);
    (0..take).map(|i| items[i * n / take].clone()).collect()
}
