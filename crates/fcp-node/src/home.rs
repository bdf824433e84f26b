//! The node's home directory (`--home`, else `$FCP_HOME`, else `~/.fcp`).
//!
//! ```text
//! node.json                 node id, listen address (public)
//! keys/node-signing.key     fcp-key-v1 files, mode 0600
//! keys/node-encryption.key
//! keys/node-issuance.key
//! owner/owner.key           owner signing key (owner's device only), 0600
//! owner/zones/<zone>.cbor   zone key + ObjectIdKey the owner distributes, 0600
//! owner/nodes/<node>.cbor   attestations + addresses of enrolled nodes
//! trust/owner.pub           the owner public key this node trusts
//! trust/bundle.cbor         the enrollment bundle this node joined with
//! ```
//!
//! Every write goes to a temporary file that is fsynced and renamed over the
//! target, so a crash leaves the old or the new file, never half of one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{NodeError, io};

/// Public node configuration (`node.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Node id (the Tailscale node id in production; any `[a-z0-9._-]` name here).
    pub node_id: String,
    /// `IP:PORT` for UDP (FCPS) and TCP (FCPC).
    pub listen: String,
    /// Creation time, unix seconds.
    pub created_at: u64,
}

/// A node's home directory.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `flag`, else `$FCP_HOME`, else `~/.fcp`.
    pub fn resolve(flag: Option<&Path>) -> Result<Self, NodeError> {
        if let Some(p) = flag {
            return Ok(Self::at(p));
        }
        if let Some(p) = std::env::var_os("FCP_HOME").filter(|p| !p.is_empty()) {
            return Ok(Self::at(Path::new(&p)));
        }
        let home = std::env::var_os("HOME").ok_or_else(|| {
            NodeError::InvalidArgument("no --home, $FCP_HOME or $HOME to locate the node".into())
        })?;
        Ok(Self::at(&Path::new(&home).join(".fcp")))
    }

    /// A home at `root`.
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the home.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Whether a file exists in the home.
    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Read a file of the home.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>, NodeError> {
        let p = self.path(rel);
        fs::read(&p).map_err(io(&p))
    }

    /// Atomically write a public file (mode 0644).
    pub fn write_public(&self, rel: &str, bytes: &[u8]) -> Result<(), NodeError> {
        self.write_atomic(rel, bytes, 0o644)
    }

    /// Atomically write a secret file (mode 0600, directory 0700).
    pub fn write_secret(&self, rel: &str, bytes: &[u8]) -> Result<(), NodeError> {
        self.write_atomic(rel, bytes, 0o600)
    }

    fn write_atomic(&self, rel: &str, bytes: &[u8], mode: u32) -> Result<(), NodeError> {
        let target = self.path(rel);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        // A new home is private (0700): it holds the keys and the admin
        // socket. An existing directory keeps its mode.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(io(&self.root))?;
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        if mode == 0o600 {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io(&dir))?;
        }
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            target
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &target).map_err(io(&target))?;
        // Make the rename durable too.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// List the files of a sub-directory (empty if it does not exist).
    pub fn list(&self, rel_dir: &str) -> Result<Vec<String>, NodeError> {
        let d = self.path(rel_dir);
        match fs::read_dir(&d) {
            Ok(rd) => {
                let mut v: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect();
                v.sort();
                Ok(v)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&d)(e)),
        }
    }

    /// The node configuration.
    pub fn config(&self) -> Result<NodeConfig, NodeError> {
        if !self.exists("node.json") {
            return Err(NodeError::NotInitialised(self.root.display().to_string()));
        }
        let bytes = self.read("node.json")?;
        serde_json::from_slice(&bytes).map_err(|e| NodeError::Malformed {
            path: self.path("node.json").display().to_string(),
            why: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_home_is_private() {
        // Before the fix the home got the umask's mode (0755 under 022):
        // everyone could list it and reach its admin socket.
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(&dir.path().join("new"));
        crate::enroll::init(&home, "n1", "127.0.0.1:7401", 1, &mut rand::rng()).unwrap();
        assert_eq!(mode(home.root()), 0o700);
        // A directory that is already there keeps its mode.
        let given = dir.path().join("given");
        fs::create_dir(&given).unwrap();
        fs::set_permissions(&given, fs::Permissions::from_mode(0o750)).unwrap();
        Home::at(&given).write_public("node.json", b"{}").unwrap();
        assert_eq!(mode(&given), 0o750);
    }
}
