//! Embeds the bundled provider manifests (`providers/*.toml` at the workspace
//! root) into the library, with one sha256 over all of them so the fast path
//! notices when a new keyhelper changed what a provider means, and each also
//! as JSON, which a call reads instead: parsing the Azure manifest's TOML
//! took a cold `get` 0.08 ms (5% of it), its JSON a tenth of that.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let providers = manifest_dir.parent().expect("core/ lives in the workspace root").join("providers");
    println!("cargo:rerun-if-changed={}", providers.display());

    let mut files: Vec<PathBuf> = fs::read_dir(&providers)
        .unwrap_or_else(|e| panic!("reading {}: {e}", providers.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();

    let mut code = String::from(
        "/// Provider manifests compiled into keyhelper (`providers/<name>.toml`), by name.\npub static BUNDLED_MANIFESTS: &[(&str, &str)] = &[\n",
    );
    let mut digest = Sha256::new();
    for file in &files {
        let name = file.file_stem().expect("a .toml file has a stem").to_string_lossy();
        writeln!(code, "    ({name:?}, include_str!({:?})),", file.display().to_string())
            .expect("writing to a String");
        digest.update(fs::read(file).expect("reading a provider manifest"));
    }
    code.push_str("];\n\n/// The same manifests as JSON, by name.\npub static BUNDLED_MANIFESTS_JSON: &[(&str, &str)] = &[\n");
    for file in &files {
        let name = file.file_stem().expect("a .toml file has a stem").to_string_lossy();
        let text = fs::read_to_string(file).expect("reading a provider manifest");
        let value: toml::Value =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", file.display()));
        let json = serde_json::to_string(&value).expect("TOML values convert to JSON");
        writeln!(code, "    ({name:?}, {json:?}),").expect("writing to a String");
    }
    code.push_str("];\n");
    writeln!(
        code,
        "\n/// sha256 of the bundled manifests, to notice they changed.\npub static BUNDLED_MANIFESTS_SHA256: &str = {:?};",
        hex::encode(digest.finalize())
    )
    .expect("writing to a String");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    fs::write(out_dir.join("bundled_manifests.rs"), code).expect("writing into OUT_DIR");
}
