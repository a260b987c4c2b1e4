//! Writing the report directory so that a failed run leaves no half report:
//! the files are written into a fresh temporary directory beside the
//! destination, which is then renamed into place. An existing destination is
//! replaced only when it holds nothing but report files (a previous report).

use std::path::{Path, PathBuf};

use super::ReportError;

/// Name of the page inside the report directory.
pub const INDEX: &str = "index.html";

/// Write `files` (name, contents) as the directory `dir`, atomically.
pub fn write_report_dir(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), ReportError> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
    check_replaceable(dir, &names)?;
    let failed = |source| ReportError::Write {
        dir: dir.to_path_buf(),
        source,
    };
    let staging = tempfile::Builder::new()
        .prefix(".sqz-report-")
        .tempdir_in(parent)
        .map_err(failed)?;
    let fresh = staging.path().join("new");
    std::fs::create_dir(&fresh).map_err(failed)?;
    for (name, bytes) in files {
        std::fs::write(fresh.join(name), bytes).map_err(failed)?;
    }
    if dir.exists() {
        // Move the old report aside; it is deleted with `staging`.
        std::fs::rename(dir, staging.path().join("old")).map_err(failed)?;
    }
    std::fs::rename(&fresh, dir).map_err(failed)?;
    Ok(())
}

/// Refuse to replace `dir` unless it is missing or a directory holding only
/// files named in `names` (checked again by [`write_report_dir`]; callers
/// may check first to fail before long computations).
pub fn check_replaceable(dir: &Path, names: &[&str]) -> Result<(), ReportError> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(ReportError::NotADirectory(dir.to_path_buf()));
    }
    let unreadable = |source| ReportError::Read {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let name: PathBuf = entry.map_err(unreadable)?.file_name().into();
        if !names.iter().any(|n| Path::new(n) == name) {
            return Err(ReportError::ForeignFile {
                dir: dir.to_path_buf(),
                name,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_then_replaces_a_previous_report() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("report");
        write_report_dir(&dir, &[(INDEX, b"first")]).expect("first write");
        write_report_dir(&dir, &[(INDEX, b"second")]).expect("second write");
        assert_eq!(std::fs::read(dir.join(INDEX)).expect("index"), b"second");
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).expect("list").collect();
        assert_eq!(leftovers.len(), 1, "only the report directory remains");
    }

    #[test]
    fn refuses_to_replace_a_directory_with_other_files() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("mine");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("notes.txt"), b"keep").expect("write");
        let err = write_report_dir(&dir, &[(INDEX, b"x")]).expect_err("must refuse");
        assert!(err.to_string().contains("notes.txt"), "{err}");
        assert_eq!(std::fs::read(dir.join("notes.txt")).expect("kept"), b"keep");
        assert!(!dir.join(INDEX).exists());
    }
}
