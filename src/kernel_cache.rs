//! Decompressed Linux kernels, kept across runs.
//!
//! Inflating the XZ payload of a bzImage costs the same ~0.4 s whether the guest's own
//! decompressor does it or the host does (it is the LZMA decoder's speed), a quarter of a
//! Debian 686 boot. The host-side result is kept in a cache directory, keyed by a hash
//! of the payload and its size, so that every later boot of the same kernel starts at
//! `startup_32` at once. Cache failures never stop a boot: the kernel is decompressed
//! again (and a warning says why the result could not be kept).

use anyhow::{Context, Result};
use std::hash::Hasher;
use std::path::PathBuf;

/// `$RINGFOLD_CACHE_DIR`, else `$XDG_CACHE_HOME/ringfold`, else `~/.cache/ringfold`.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("RINGFOLD_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("ringfold")))
        .or_else(|| env("HOME").map(|d| d.join(".cache/ringfold")))
}

/// Where the decompressed form of `payload` lives in `dir`.
fn entry(dir: &std::path::Path, payload: &[u8], size: usize) -> PathBuf {
    // SipHash with fixed keys: stable for this binary; a changed hash function in another
    // build only means a miss.
    let mut h = std::hash::DefaultHasher::new();
    h.write(payload);
    dir.join("kernels").join(format!("vmlinux-{:016x}-{size}.bin", h.finish()))
}

/// Where a decompressed kernel came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Decompressed,
}

/// The decompressed kernel for an XZ `payload` of `size` bytes: from the cache when
/// `dir` has it (and it has the right size), else inflated now and stored there.
pub fn decompressed(dir: Option<&std::path::Path>, payload: &[u8], size: usize) -> Result<(Vec<u8>, Source)> {
    // Hashing the payload (5.6 MB for Debian's 686 kernel) once serves the lookup and the store.
    let path = dir.map(|d| entry(d, payload, size));
    if let Some(path) = &path {
        if let Ok(img) = std::fs::read(path) {
            if img.len() == size {
                return Ok((img, Source::Cache));
            }
        }
    }
    let img = ringfold_boot::vmlinux::decompress_xz(payload, size)
        .context("cannot decompress the kernel (--guest-decompress lets its own decompressor try)")?;
    if let (Some(dir), Some(path)) = (dir, &path) {
        if let Err(e) = store(path, &img) {
            eprintln!("ringfold: warning: cannot keep the decompressed kernel in {}: {e:#}", dir.display());
        }
    }
    Ok((img, Source::Decompressed))
}

/// Forgets a cached kernel that turned out to be unusable.
pub fn forget(dir: &std::path::Path, payload: &[u8], size: usize) {
    let _ = std::fs::remove_file(entry(dir, payload, size));
}

/// Writes `img` to `path` atomically (a temporary file renamed into place), so that a
/// concurrent or interrupted run never leaves a partial entry.
fn store(path: &std::path::Path, img: &[u8]) -> Result<()> {
    let parent = path.parent().context("cache path has no directory")?;
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, img).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} into place", tmp.display())).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_is_decompressed_once_then_read_from_the_cache() {
        let dir = std::env::temp_dir().join(format!("ringfold-kcache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let xz: &[u8] = include_bytes!("../crates/boot/src/testdata/ringfold.xz");
        let (img, src) = decompressed(Some(&dir), xz, 9).unwrap();
        assert_eq!((img.as_slice(), src), (b"ringfold\n".as_slice(), Source::Decompressed));
        let (img, src) = decompressed(Some(&dir), xz, 9).unwrap();
        assert_eq!((img.as_slice(), src), (b"ringfold\n".as_slice(), Source::Cache));
        // A damaged entry (wrong size) is not used; a forgotten one is made again.
        std::fs::write(entry(&dir, xz, 9), b"short").unwrap();
        assert_eq!(decompressed(Some(&dir), xz, 9).unwrap().1, Source::Decompressed);
        forget(&dir, xz, 9);
        assert!(!entry(&dir, xz, 9).exists());
        // No cache directory at all, or one that cannot be created: still decompressed.
        assert_eq!(decompressed(None, xz, 9).unwrap().0, b"ringfold\n");
        let blocked = dir.join("file");
        std::fs::write(&blocked, b"x").unwrap();
        assert_eq!(decompressed(Some(&blocked), xz, 9).unwrap().1, Source::Decompressed);
        // A corrupt payload is an error with a hint.
        let e = decompressed(Some(&dir), &xz[..20], 9).unwrap_err();
        assert!(format!("{e:#}").contains("--guest-decompress"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
