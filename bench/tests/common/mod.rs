//! What the bench's integration tests share.

use std::path::PathBuf;

/// The debug tandem-server binary of this workspace, built if missing.
pub fn server_bin() -> PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = root.join("target").join("debug").join("tandem-server");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = std::process::Command::new(cargo)
            .current_dir(&root)
            .args(["build", "-p", "tandem-server", "--bin", "tandem-server"])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    bin
}
