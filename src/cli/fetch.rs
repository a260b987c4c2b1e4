//! `fetch`: download a public SqueezeNet release into the cache, verified
//! against known SHA-256 hashes (see [`crate::fetch`]).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::builder::PossibleValuesParser;

use super::output::write_atomic;
use crate::fetch::{default_cache_dir, is_cached, release, Downloader, DEFAULT_BASE_URL, RELEASES};

/// Arguments of `fetch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release to download.
    #[arg(value_parser = PossibleValuesParser::new(RELEASES.iter().map(|r| r.name)))]
    release: String,
    /// Folder for the files (default: `$XDG_CACHE_HOME/sqz/RELEASE`, else
    /// `~/.cache/sqz/RELEASE`).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Server to download from instead of GitHub's raw file host; it must
    /// serve the same `OWNER/REPO/COMMIT/PATH` layout.
    #[arg(long, value_name = "URL", default_value = DEFAULT_BASE_URL)]
    base_url: String,
}

/// Run `fetch`: files already present with the right hash are kept; the
/// others are all downloaded and verified before any is written, so a
/// failure leaves the folder as it was.
pub fn run(args: Args) -> anyhow::Result<()> {
    let release =
        release(&args.release).with_context(|| format!("unknown release {}", args.release))?;
    let dir = match args.dir {
        Some(dir) => dir,
        None => default_cache_dir()
            .context("no cache folder: neither XDG_CACHE_HOME nor HOME is set; give --dir")?
            .join(release.name),
    };
    let mut stdout = std::io::stdout();
    let downloader = Downloader::new();
    let mut downloads = Vec::new();
    for file in release.files {
        let path = dir.join(file.name);
        if is_cached(&path, file) {
            writeln!(stdout, "{} is up to date", path.display())?;
        } else {
            downloads.push((path, downloader.download(&args.base_url, file)?));
        }
    }
    if !downloads.is_empty() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for (path, bytes) in &downloads {
        write_atomic(path, bytes)?;
        writeln!(
            stdout,
            "downloaded {} ({} bytes, SHA-256 verified)",
            path.display(),
            bytes.len()
        )?;
    }
    writeln!(
        stdout,
        "{} is ready: {}",
        release.description,
        dir.join(release.files[0].name).display()
    )?;
    Ok(())
}
