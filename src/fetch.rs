//! Downloading the public SqueezeNet releases that sqz works on, verified
//! against a table of known SHA-256 hashes.
//!
//! Every file is fetched from a pinned commit of its GitHub repository (so
//! its content never changes) as `BASE/PATH`, where `BASE` defaults to
//! [`DEFAULT_BASE_URL`] and can point at a mirror with the same layout. A
//! download is refused when it is larger than the file's known size or its
//! hash differs from the table's. Writing the files is left to the caller:
//! this module only hands out verified bytes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Where the files are published: GitHub's raw file host, which serves
/// `OWNER/REPO/COMMIT/PATH`.
pub const DEFAULT_BASE_URL: &str = "https://raw.githubusercontent.com";

/// A path in DeepScale's SqueezeNet repository at the commit whose files
/// the hashes below describe (the same commit, sizes and hashes as
/// OpenVINO's Open Model Zoo `squeezenet1.0`/`squeezenet1.1` definitions).
macro_rules! deepscale {
    ($path:literal) => {
        concat!(
            "forresti/SqueezeNet/a47b6f13d30985279789d08053d37013d67d131b/",
            $path
        )
    };
}

/// A path in Han's Deep Compression release; the hashes are those of the
/// copies in the project's shared data
/// (`models/squeezenet_v1.0-deep-compression`).
macro_rules! deep_compression {
    ($path:literal) => {
        concat!(
            "songhan/SqueezeNet-Deep-Compression/5623e3cdbe1fcd83328c61ce2ee42c34ed319aa3/",
            $path
        )
    };
}

/// One published file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile {
    /// Name of the local copy.
    pub name: &'static str,
    /// Location below the base URL: `OWNER/REPO/COMMIT/PATH`.
    pub path: &'static str,
    /// Exact size in bytes; also the download cap.
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: &'static str,
}

/// A model release: the files that together make one loadable model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// Name used on the command line and as the cache folder.
    pub name: &'static str,
    /// What the release is, for help and progress messages.
    pub description: &'static str,
    /// The files, the weights first.
    pub files: &'static [RemoteFile],
}

/// Every release `fetch` knows.
pub const RELEASES: &[Release] = &[
    Release {
        name: "squeezenet1.0",
        description: "DeepScale SqueezeNet v1.0 (Caffe, BSD-2)",
        files: &[
            RemoteFile {
                name: "squeezenet_v1.0.caffemodel",
                path: deepscale!("SqueezeNet_v1.0/squeezenet_v1.0.caffemodel"),
                size: 5_001_403,
                sha256: "9ff8035aada1f9ffa880b35252680d971434b141ec9fbacbe88309f0f9a675ce",
            },
            RemoteFile {
                name: "deploy.prototxt",
                path: deepscale!("SqueezeNet_v1.0/deploy.prototxt"),
                size: 9_640,
                sha256: "6e4ecef2a27347e226a5ef8be31d6d1b9d19f5a40afa1986ec259fd5fa3bd91c",
            },
        ],
    },
    Release {
        name: "squeezenet1.1",
        description: "DeepScale SqueezeNet v1.1 (Caffe, BSD-2)",
        files: &[
            RemoteFile {
                name: "squeezenet_v1.1.caffemodel",
                path: deepscale!("SqueezeNet_v1.1/squeezenet_v1.1.caffemodel"),
                size: 4_950_080,
                sha256: "72b912ace512e8621f8ff168a7d72af55910d3c7c9445af8dfbff4c2ee960142",
            },
            RemoteFile {
                name: "deploy.prototxt",
                path: deepscale!("SqueezeNet_v1.1/deploy.prototxt"),
                size: 9_678,
                sha256: "d041bfb2ab4b32fda4ff6c6966684132f2924e329916aa5bfe9285c6b23e3d1c",
            },
        ],
    },
    Release {
        name: "squeezenet1.0-deep-compression",
        description: "Han et al.'s Deep Compression of SqueezeNet v1.0 (BSD-2)",
        files: &[
            RemoteFile {
                name: "compressed_SqueezeNet.net",
                path: deep_compression!("compressed_SqueezeNet.net"),
                size: 675_763,
                sha256: "e4ab6960ae8cd81505e1c2136921201507e930966c53deaf15862a395b3a3261",
            },
            RemoteFile {
                name: "SqueezeNet_deploy.prototxt",
                path: deep_compression!("SqueezeNet_deploy.prototxt"),
                size: 10_486,
                sha256: "3bcb0e792e2b50ddeb955b178ba6742e28d8950956915348eba355652040674c",
            },
        ],
    },
];

/// Longest wait for a server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time one download may take in all (the largest file is 5 MB).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a file could not be fetched. Each message is one line naming the URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connecting or transferring failed (no network, refused, timeout, TLS).
    #[error("cannot download {url}: {message}")]
    Network { url: String, message: String },
    /// The server answered with something other than 200 OK.
    #[error("cannot download {url}: the server answered HTTP {status}")]
    Status { url: String, status: u16 },
    /// The content is larger than the published file: refused unread.
    #[error("download of {url} is larger than the published {expected} bytes; refused")]
    TooLarge { url: String, expected: u64 },
    /// The content is shorter than the published file.
    #[error("download of {url} has {actual} bytes, the published file {expected}")]
    WrongSize {
        url: String,
        expected: u64,
        actual: u64,
    },
    /// The content is not the published file.
    #[error("download of {url} is not the published file: SHA-256 {actual}, expected {expected}")]
    HashMismatch {
        url: String,
        expected: &'static str,
        actual: String,
    },
}

/// The release called `name` on the command line.
pub fn release(name: &str) -> Option<&'static Release> {
    RELEASES.iter().find(|r| r.name == name)
}

/// The user's download cache for sqz: `$XDG_CACHE_HOME/sqz`, else
/// `$HOME/.cache/sqz` (following the XDG base directory convention, which
/// ignores empty and relative values); `None` when neither is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|cache| cache.join("sqz"))
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The URL of `file` below `base_url` (a trailing `/` on it is allowed).
pub fn file_url(base_url: &str, file: &RemoteFile) -> String {
    format!("{}/{}", base_url.trim_end_matches('/'), file.path)
}

/// Whether `path` already holds exactly `file` (size and SHA-256 match), so
/// it need not be downloaded again. Unreadable or different files are not.
pub fn is_cached(path: &Path, file: &RemoteFile) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    meta.is_file()
        && meta.len() == file.size
        && std::fs::read(path).is_ok_and(|bytes| sha256_hex(&bytes) == file.sha256)
}

/// Check that `bytes` fetched from `url` are exactly `file`.
pub fn verify(url: &str, file: &RemoteFile, bytes: &[u8]) -> Result<(), FetchError> {
    let actual = bytes.len() as u64;
    if actual > file.size {
        return Err(FetchError::TooLarge {
            url: url.into(),
            expected: file.size,
        });
    }
    if actual < file.size {
        return Err(FetchError::WrongSize {
            url: url.into(),
            expected: file.size,
            actual,
        });
    }
    let hash = sha256_hex(bytes);
    if hash != file.sha256 {
        return Err(FetchError::HashMismatch {
            url: url.into(),
            expected: file.sha256,
            actual: hash,
        });
    }
    Ok(())
}

/// An HTTP(S) client (pure Rust: ureq with rustls and the Mozilla root
/// certificates) with connection and download timeouts.
#[derive(Debug, Clone)]
pub struct Downloader {
    agent: ureq::Agent,
}

impl Default for Downloader {
    fn default() -> Self {
        Self::new()
    }
}

impl Downloader {
    /// A client that reports HTTP error statuses itself and gives up on
    /// servers that stall.
    pub fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(DOWNLOAD_TIMEOUT))
            .user_agent(concat!("sqz-compress/", env!("CARGO_PKG_VERSION")))
            .build();
        Downloader {
            agent: config.new_agent(),
        }
    }

    /// Download `file` from `base_url` and return its verified content.
    /// At most one byte more than the published size is read, so a server
    /// sending endless data cannot exhaust memory.
    pub fn download(&self, base_url: &str, file: &RemoteFile) -> Result<Vec<u8>, FetchError> {
        let url = file_url(base_url, file);
        let network = |e: &dyn std::fmt::Display| FetchError::Network {
            url: url.clone(),
            message: e.to_string(),
        };
        let response = self.agent.get(&url).call().map_err(|e| network(&e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status { url, status });
        }
        let mut bytes = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(file.size + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| network(&e))?;
        verify(&url, file, &bytes)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_well_formed() {
        for (i, known) in RELEASES.iter().enumerate() {
            assert_eq!(release(known.name), Some(known));
            assert!(RELEASES[..i].iter().all(|r| r.name != known.name));
            for (j, file) in known.files.iter().enumerate() {
                assert!(known.files[..j].iter().all(|f| f.name != file.name));
                assert_eq!(file.sha256.len(), 64);
                assert!(file
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
                assert!(
                    file.path.ends_with(&format!("/{}", file.name)),
                    "{} keeps its published name",
                    file.path
                );
            }
        }
        assert_eq!(release("squeezenet2"), None);
    }

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        // FIPS 180-2, appendix B.1: SHA-256("abc").
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verification_names_what_is_wrong() {
        let file = RemoteFile {
            name: "abc",
            path: "x/abc",
            size: 3,
            sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        };
        assert!(verify("u", &file, b"abc").is_ok());
        assert!(matches!(
            verify("u", &file, b"abcd"),
            Err(FetchError::TooLarge { expected: 3, .. })
        ));
        assert!(matches!(
            verify("u", &file, b"ab"),
            Err(FetchError::WrongSize {
                expected: 3,
                actual: 2,
                ..
            })
        ));
        let e = verify("u", &file, b"abd").unwrap_err().to_string();
        assert!(
            e.contains(file.sha256) && e.contains(&sha256_hex(b"abd")),
            "{e}"
        );
    }

    #[test]
    fn urls_join_base_and_path_once() {
        let file = &RELEASES[2].files[0];
        assert_eq!(
            file_url("http://h:1/", file),
            format!("http://h:1/{}", file.path)
        );
        assert_eq!(
            file_url("http://h:1", file),
            format!("http://h:1/{}", file.path)
        );
    }
}
