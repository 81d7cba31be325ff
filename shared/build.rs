//! Lists the SQL files in `migrations/` for `postgres::MIGRATIONS`, so that adding a migration
//! is adding its file. The version is the file name's leading number (`0004_...sql` is 4).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("migrations/ directory")
        .map(|entry| entry.expect("migrations/ entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    names.sort();
    let mut list = String::from("&[\n");
    for name in &names {
        let version: i32 = name
            .split('_')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("migration {name} must start with its number, e.g. 0004_"));
        let path = dir.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            list,
            "    Migration {{ version: {version}, name: {name:?}, sql: include_str!({:?}) }},",
            path.display().to_string()
        )
        .expect("write to a String");
    }
    list.push(']');
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("migrations.rs");
    std::fs::write(out, list).expect("write the migration list");
}
