//! Has a file changed since it was read? A stamp (length, modification and change times,
//! inode) taken just before reading, and a content digest for files so recently changed that
//! an equal stamp proves nothing. Shared by the web config's reloads and
//! `--config.auto-reload`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// The most a watched file is read for its digest (configs, rule files, certificates and
/// tokens are small).
pub const READ_LIMIT: u64 = 64 << 20;

/// How recently before its stamp a file may have changed for the stamp alone not to be
/// trusted: file times are coarse (a few milliseconds on Linux, up to 2 s elsewhere), so a
/// same-length rewrite in the same tick leaves the stamp as it was. Such files are compared
/// by content until they are older than this (as git does with "racily clean" files).
const RACY: Duration = Duration::from_secs(2);

/// What a file looked like on disk, following symlinks (so a swapped Kubernetes secret mount
/// counts). The change time and inode catch a rewrite that keeps the length and restores the
/// modification time (`cp -p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// The inode change time (Unix).
    changed: Option<SystemTime>,
    /// (device, inode) on Unix.
    inode: (u64, u64),
}

/// `None` for a file that cannot be stat'ed (missing, ...).
pub fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let (changed, inode) = {
        use std::os::unix::fs::MetadataExt;
        let changed = u64::try_from(meta.ctime())
            .ok()
            .zip(u32::try_from(meta.ctime_nsec()).ok())
            .map(|(s, ns)| SystemTime::UNIX_EPOCH + Duration::new(s, ns));
        (changed, (meta.dev(), meta.ino()))
    };
    #[cfg(not(unix))]
    let (changed, inode) = (None, (0, 0));
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        changed,
        inode,
    })
}

/// One file, as it was just before it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: PathBuf,
    pub stamp: Option<Stamp>,
    /// When the stamp was taken.
    pub taken: SystemTime,
    /// SHA-256 of the bytes read; `None` when reading failed.
    pub digest: Option<[u8; 32]>,
}

impl Seen {
    /// Stamps `path`, then reads it (a regular file of at most `limit` bytes).
    pub fn read(path: &Path, limit: u64) -> (Seen, std::io::Result<Vec<u8>>) {
        let taken = SystemTime::now();
        let stamp = stamp(path);
        // Regular files only, never waited on (a FIFO would hang every reload), bounded.
        let bytes = super::diag::read_bytes(path, limit);
        let seen = Seen {
            path: path.to_path_buf(),
            stamp,
            taken,
            digest: bytes.as_ref().ok().map(|b| Sha256::digest(b).into()),
        };
        (seen, bytes)
    }

    /// Did the file change so shortly before its stamp that an equal stamp proves nothing?
    pub fn racy(&self) -> bool {
        let Some(stamp) = self.stamp else {
            return false;
        };
        [stamp.modified, stamp.changed]
            .into_iter()
            .flatten()
            .any(|t| t + RACY >= self.taken)
    }
}

/// A set of files as they were read: the web config and every file it names, or the service
/// config and its rule files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint(pub Vec<Seen>);

impl Fingerprint {
    /// Has any of the files changed (or appeared, or gone) since it was read? A `stat` a
    /// file; files changed just before they were read are also compared by content, and
    /// their stamp is renewed when the content proves the same.
    pub fn changed(&mut self) -> bool {
        for seen in &mut self.0 {
            if stamp(&seen.path) != seen.stamp {
                return true;
            }
            if seen.racy() {
                let (again, _) = Seen::read(&seen.path, READ_LIMIT);
                if again.stamp != seen.stamp || again.digest != seen.digest {
                    return true;
                }
                seen.taken = again.taken;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_see_rewrites_that_keep_length_and_mtime() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("f");
        std::fs::write(&p, "aaaa").expect("write");
        let mtime = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .expect("mtime");
        let mut fp = Fingerprint(vec![Seen::read(&p, READ_LIMIT).0]);
        assert!(!fp.changed());
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&p, "bbbb").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(mtime))
            .expect("set mtime");
        let now = stamp(&p).expect("stamp");
        let was = fp.0[0].stamp.expect("stamp");
        assert_eq!((now.len, now.modified), (was.len, was.modified));
        assert!(fp.clone().changed(), "ctime, or the content");
        std::fs::remove_file(&p).expect("rm");
        assert!(fp.changed());
    }

    #[test]
    fn racy_files_are_compared_by_content_until_they_are_old() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("f");
        std::fs::write(&p, "aaaa").expect("write");
        // Stamped in the same tick as a same-length rewrite: the stamp cannot tell.
        let (mut seen, _) = Seen::read(&p, READ_LIMIT);
        seen.digest = Some(Sha256::digest(b"an older content").into());
        assert!(seen.racy());
        assert!(Fingerprint(vec![seen.clone()]).changed());
        // The content it was read with: unchanged, and the stamp time is renewed.
        let (same, _) = Seen::read(&p, READ_LIMIT);
        let mut fp = Fingerprint(vec![same]);
        assert!(!fp.changed());
        // Long after its last change, a file is trusted by its stamp alone.
        seen.taken = SystemTime::now() + RACY + Duration::from_secs(1);
        assert!(!seen.racy());
        assert!(!Fingerprint(vec![seen]).changed());
    }
}
