//! Writing result files safely: every output goes to a temporary file in
//! the destination folder and is renamed into place only once complete, so a
//! failed or interrupted command never leaves a partial file, and an output
//! path that names one of the command's inputs is refused.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};

use super::load::input_files;
use super::ModelArgs;

/// Refuse `output` when it is one of the files the input model is read
/// from (compared after resolving links and relative paths, for files that
/// exist).
pub fn check_output(output: &Path, model: &ModelArgs) -> anyhow::Result<()> {
    let Ok(out) = output.canonicalize() else {
        return Ok(());
    };
    for input in input_files(&model.model, &model.read_options()) {
        if input.canonicalize().is_ok_and(|i| i == out) {
            bail!(
                "output {} is also an input; choose another -o path",
                output.display()
            );
        }
    }
    Ok(())
}

/// Write `bytes` to `path` atomically (temporary file + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let context = || format!("cannot write {}", path.display());
    let mut builder = tempfile::Builder::new();
    builder.prefix(".sqz-tmp-");
    // Written files get the mode of any file the user creates, not the
    // private mode of temporary files.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder.tempfile_in(dir).with_context(context)?;
    tmp.write_all(bytes).with_context(context)?;
    tmp.as_file().sync_all().with_context(context)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(context)?;
    Ok(())
}
