//! The baseline of `cargo xtask bench`: the most trivial Rust program that does
//! what a `keyhelper` command does at its cheapest. `version` prints a line;
//! `cat FILE` reads a small file and prints it.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.first().map(String::as_str) {
        Some("cat") => std::fs::read(&args[1]).expect("reading the file"),
        _ => b"bench-baseline 0.1.0\n".to_vec(),
    };
    std::io::stdout().write_all(&out).expect("writing stdout");
}
