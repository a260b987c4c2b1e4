//! `fetch` against a tiny HTTP server on 127.0.0.1 started by each test,
//! serving copies of Han's Deep Compression files from the shared data (the
//! internet is never touched): the files land verified and loadable, a
//! second run downloads nothing, and wrong, oversized or missing files and
//! unreachable servers fail with one clear line, leaving no file behind.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{shared, sqz_command};
use formats::{read_model, ReadOptions};
use sqz::fetch::{release, sha256_hex, RemoteFile};

const RELEASE: &str = "squeezenet1.0-deep-compression";
/// Most requests one test server answers before it stops by itself.
const MAX_REQUESTS: usize = 8;

/// The files of [`RELEASE`].
fn files() -> &'static [RemoteFile] {
    release(RELEASE).expect("the release is known").files
}

/// The shared data's copy of `file`.
fn original(file: &RemoteFile) -> Vec<u8> {
    let path = shared()
        .join("models/squeezenet_v1.0-deep-compression")
        .join(file.name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A local HTTP server answering `GET /PATH` with `content[PATH]` or 404.
struct Server {
    base_url: String,
    requests: Arc<AtomicUsize>,
}

impl Server {
    /// Serve `content` (URL paths without the leading `/`) from a thread.
    fn start(content: HashMap<String, Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot listen on 127.0.0.1");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().take(MAX_REQUESTS).flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                answer(stream, &content);
            }
        });
        Server { base_url, requests }
    }

    /// Requests served so far.
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Read one request's head and send the file it asks for, closing the
/// connection after it.
fn answer(mut stream: TcpStream, content: &HashMap<String, Vec<u8>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/');
    let response = match content.get(path) {
        Some(body) => [
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes(),
            body.clone(),
        ]
        .concat(),
        None => {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
        }
    };
    let _ = stream.write_all(&response);
}

/// Content for a server: every file of the release at its published path,
/// with `change` applied to the bytes.
fn serving(change: impl Fn(&RemoteFile, Vec<u8>) -> Vec<u8>) -> HashMap<String, Vec<u8>> {
    files()
        .iter()
        .map(|f| (f.path.to_owned(), change(f, original(f))))
        .collect()
}

/// Run `sqz-compress fetch RELEASE` with `extra` arguments, without proxies
/// (a proxy setting must not send loopback requests elsewhere).
fn fetch(extra: &[&std::ffi::OsStr], cache_home: Option<&Path>) -> Output {
    let mut command = sqz_command();
    command.args(["fetch", RELEASE]).args(extra);
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        command.env_remove(var);
    }
    if let Some(home) = cache_home {
        command.env("XDG_CACHE_HOME", home);
    }
    command.output().expect("cannot start sqz-compress")
}

/// The one-line error of a failed run.
fn failure(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

/// Whether `dir` holds no file at all (or does not exist).
fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none())
}

#[test]
fn fetch_downloads_verified_files_once() {
    let server = Server::start(serving(|_, bytes| bytes));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("models");
    let out = fetch(args!["--base-url", server.base_url, "--dir", dir], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.requests(), files().len());
    for file in files() {
        let bytes = std::fs::read(dir.join(file.name)).unwrap();
        assert_eq!(bytes, original(file), "{}", file.name);
        assert_eq!(
            sha256_hex(&bytes),
            file.sha256,
            "the table holds the hash of the shared copy of {}",
            file.name
        );
    }
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        files().len(),
        "no temporary files left: {names:?}"
    );

    let fetched = read_model(
        &dir.join("compressed_SqueezeNet.net"),
        &ReadOptions::default(),
    )
    .unwrap();
    let shipped = read_model(
        &shared().join("models/squeezenet_v1.0-deep-compression/compressed_SqueezeNet.net"),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(
        fetched, shipped,
        "the fetched release loads as the shipped model"
    );

    let again = fetch(args!["--base-url", server.base_url, "--dir", dir], None);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        server.requests(),
        files().len(),
        "cached files are not downloaded again"
    );
    assert_eq!(
        String::from_utf8_lossy(&again.stdout)
            .matches("is up to date")
            .count(),
        files().len()
    );
}

#[test]
fn default_folder_is_in_the_xdg_cache() {
    let server = Server::start(serving(|_, bytes| bytes));
    let cache = tempfile::tempdir().unwrap();
    let out = fetch(args!["--base-url", server.base_url], Some(cache.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in files() {
        assert!(
            cache
                .path()
                .join("sqz")
                .join(RELEASE)
                .join(file.name)
                .is_file(),
            "{}",
            file.name
        );
    }
}

#[test]
fn a_corrupt_cached_file_is_replaced() {
    let server = Server::start(serving(|_, bytes| bytes));
    let dir = tempfile::tempdir().unwrap();
    let weights = &files()[0];
    std::fs::write(
        dir.path().join(weights.name),
        vec![0u8; weights.size as usize],
    )
    .unwrap();
    let out = fetch(
        args!["--base-url", server.base_url, "--dir", dir.path()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.path().join(weights.name)).unwrap(),
        original(weights)
    );
}

#[test]
fn wrong_content_is_rejected_naming_both_hashes_and_nothing_is_kept() {
    // The prototxt is fine, the weights have one flipped bit: neither may land.
    let server = Server::start(serving(|file, mut bytes| {
        if file.name.ends_with(".net") {
            bytes[1000] ^= 1;
        }
        bytes
    }));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("models");
    let stderr = failure(&fetch(
        args!["--base-url", server.base_url, "--dir", dir],
        None,
    ));
    let mut flipped = original(&files()[0]);
    flipped[1000] ^= 1;
    assert!(
        stderr.contains(files()[0].sha256) && stderr.contains(&sha256_hex(&flipped)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}/{}", server.base_url, files()[0].path)),
        "names the URL: {stderr}"
    );
    assert!(empty(&dir), "nothing is left in the cache");
}

#[test]
fn oversized_content_is_refused() {
    let server = Server::start(serving(|_, bytes| [bytes.clone(), bytes].concat()));
    let dir = tempfile::tempdir().unwrap();
    let stderr = failure(&fetch(
        args!["--base-url", server.base_url, "--dir", dir.path()],
        None,
    ));
    assert!(
        stderr.contains(&format!(
            "larger than the published {} bytes",
            files()[0].size
        )),
        "{stderr}"
    );
    assert!(empty(dir.path()));
}

#[test]
fn missing_files_and_unreachable_servers_are_reported() {
    let server = Server::start(HashMap::new());
    let dir = tempfile::tempdir().unwrap();
    let stderr = failure(&fetch(
        args!["--base-url", server.base_url, "--dir", dir.path()],
        None,
    ));
    assert!(stderr.contains("HTTP 404"), "{stderr}");

    // A port that was just free: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let stderr = failure(&fetch(
        args![
            "--base-url",
            format!("http://{closed}"),
            "--dir",
            dir.path()
        ],
        None,
    ));
    assert!(stderr.contains("cannot download"), "{stderr}");
    assert!(empty(dir.path()));
}

#[test]
fn unknown_releases_are_refused_listing_the_known_ones() {
    let out = sqz_command()
        .args(["fetch", "squeezenet2"])
        .output()
        .unwrap();
    let stderr = failure(&out);
    for known in ["squeezenet1.0", "squeezenet1.1", RELEASE] {
        assert!(stderr.contains(known), "{stderr}");
    }
}
